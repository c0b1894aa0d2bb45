// containerd-shim-smolvm-v2: the containerd runtime v2 shim (runtime type io.containerd.smolvm.v2).
// containerd runs it as
//   containerd-shim-smolvm-v2 -namespace NS -address SOCK -publish-binary BIN -id ID [-debug] start
// in the task's bundle directory, with TTRPC_ADDRESS in the environment: `start` launches the
// long-lived shim (server.ts's bundle, action `serve`, detached), prints the unix:// address it
// serves the task API on, and exits. `delete` (with -bundle) cleans up after a shim that died and
// prints a DeleteResponse. This entry loads nothing else before it knows what to do: a task's start
// pays for one full load (the server's), not two. docs/kubernetes.md describes the install.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseFlags, socketPathFor, type ShimFlags } from './flags';

/** The server's bundle, beside this one (tsup.config.ts). */
const SERVER = path.join(__dirname, 'containerd-shim-smolvm-v2-server.js');

async function main(): Promise<number> {
  const flags = parseFlags(process.argv.slice(2));
  if (flags.version) {
    process.stdout.write('containerd-shim-smolvm-v2\n  runtime: io.containerd.smolvm.v2\n');
    return 0;
  }
  if (!flags.namespace || !flags.id) throw new Error('-namespace and -id are required (containerd passes them)');
  if (flags.action === 'start') return start(flags);
  if (flags.action === 'delete' || flags.action === 'serve') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const server = require(SERVER) as { runAction(flags: ShimFlags): Promise<number> };
    return server.runAction(flags);
  }
  throw new Error(`unknown action '${flags.action}': containerd runs this shim with start or delete`);
}

/** Launches the shim server for this task and prints its address. */
async function start(flags: ShimFlags): Promise<number> {
  const socket = socketPathFor(flags);
  fs.mkdirSync(path.dirname(socket), { recursive: true, mode: 0o711 });
  const address = `unix://${socket}`;
  const args = [
    ...process.execArgv,
    SERVER,
    '-namespace',
    flags.namespace,
    '-address',
    flags.address,
    '-publish-binary',
    flags.publishBinary,
    '-id',
    flags.id,
    ...(flags.debug ? ['-debug'] : []),
    'serve',
  ];
  // Detached (own session) with no stdio of ours: containerd waits for start's output to close.
  const child = spawn(process.execPath, args, {
    cwd: process.cwd(),
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    env: process.env,
  });
  const report = await new Promise<string>((resolve) => {
    let text = '';
    const pipe = child.stdio[3] as NodeJS.ReadableStream;
    pipe.setEncoding('utf8');
    pipe.on('data', (d: string) => (text += d));
    pipe.on('end', () => resolve(text));
    child.once('exit', (code) => resolve(text || `the shim server exited (${code}) before it was ready`));
  });
  if (report.trim() !== 'ready') {
    process.stderr.write(`smolvm shim: ${report.trim()}\n`);
    return 1;
  }
  child.unref();
  fs.writeFileSync(path.join(process.cwd(), 'address'), address, { mode: 0o600 });
  process.stdout.write(address);
  return 0;
}

if (require.main === module) {
  main().then(
    (code) => {
      if (code !== 0) process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`containerd-shim-smolvm-v2: ${(err as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
