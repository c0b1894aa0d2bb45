// containerd-shim-smolvm-v2: the containerd runtime v2 shim (runtime type io.containerd.smolvm.v2).
// containerd runs it as
//   containerd-shim-smolvm-v2 -namespace NS -address SOCK -publish-binary BIN -id ID [-debug] start
// in the task's bundle directory, with TTRPC_ADDRESS in the environment: `start` launches the
// long-lived shim (this file again, action `serve`, detached), prints the unix:// address it
// serves the task API on, and exits. `delete` (with -bundle) cleans up after a shim that died and
// prints a DeleteResponse. docs/kubernetes.md and the app's README describe the install.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { formatError } from '@smolvm/common';
import '@smolvm/driver-kvm';
import { EventPublisher } from './events';
import { unmountRootfs } from './mounts';
import { encodeMessage, timestamp } from './proto';
import { TaskService } from './service';
import { TtrpcServer } from './ttrpc';
import { killRecordedVm } from './vm-record';

export interface ShimFlags {
  namespace: string;
  address: string;
  publishBinary: string;
  id: string;
  bundle: string;
  socket: string;
  debug: boolean;
  version: boolean;
  action: string;
}

const VALUE_FLAGS: Record<string, keyof ShimFlags> = {
  namespace: 'namespace',
  address: 'address',
  'publish-binary': 'publishBinary',
  id: 'id',
  bundle: 'bundle',
  socket: 'socket',
};

/** Go `flag` syntax, as containerd passes it: -name value, -name=value, --name too. */
export function parseFlags(argv: string[]): ShimFlags {
  const flags: ShimFlags = { namespace: '', address: '', publishBinary: 'containerd', id: '', bundle: '', socket: '', debug: false, version: false, action: '' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const m = /^--?([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m) {
      flags.action = arg;
      continue;
    }
    const [, name, inline] = m;
    if (name === 'debug' || name === 'v') {
      flags[name === 'v' ? 'version' : 'debug'] = inline === undefined || inline === 'true';
      continue;
    }
    const key = VALUE_FLAGS[name];
    if (!key) throw new Error(`unknown flag -${name}`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new Error(`flag -${name} needs a value`);
    (flags as unknown as Record<string, string>)[key] = value;
  }
  return flags;
}

/** Where the shim of (containerd, namespace, id) listens: beside containerd's socket, like runc's shims. */
export function socketPathFor(flags: ShimFlags): string {
  const digest = crypto.createHash('sha256').update(`${flags.address}\0${flags.namespace}\0${flags.id}`).digest('hex').slice(0, 32);
  return path.join(path.dirname(flags.address || '/run/containerd/containerd.sock'), 's', `smolvm-${digest}`);
}

async function main(): Promise<number> {
  const flags = parseFlags(process.argv.slice(2));
  if (flags.version) {
    process.stdout.write('containerd-shim-smolvm-v2\n  runtime: io.containerd.smolvm.v2\n');
    return 0;
  }
  if (!flags.namespace || !flags.id) throw new Error('-namespace and -id are required (containerd passes them)');
  switch (flags.action) {
    case 'start':
      return start(flags);
    case 'serve':
      return serve(flags);
    case 'delete':
      return remove(flags);
    default:
      throw new Error(`unknown action '${flags.action}': containerd runs this shim with start or delete`);
  }
}

/** Launches the shim server for this task and prints its address. */
async function start(flags: ShimFlags): Promise<number> {
  const socket = socketPathFor(flags);
  fs.mkdirSync(path.dirname(socket), { recursive: true, mode: 0o711 });
  const address = `unix://${socket}`;
  const args = [...process.execArgv, __filename, '-namespace', flags.namespace, '-address', flags.address, '-publish-binary', flags.publishBinary, '-id', flags.id, ...(flags.debug ? ['-debug'] : []), 'serve'];
  // Detached (own session) with no stdio of ours: containerd waits for start's output to close.
  const child = spawn(process.execPath, args, { cwd: process.cwd(), detached: true, stdio: ['ignore', 'ignore', 'ignore', 'pipe'], env: process.env });
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

/** The long-lived shim: the task service on the socket until Shutdown. */
async function serve(flags: ShimFlags): Promise<number> {
  const ready = fs.createWriteStream('', { fd: 3 });
  const log = openLog(flags.debug);
  const socket = socketPathFor(flags);
  const publisher = new EventPublisher(process.env.TTRPC_ADDRESS ?? `${flags.address}.ttrpc`, flags.namespace, log);
  const service = new TaskService({
    namespace: flags.namespace,
    publisher,
    agentBundle: agentBundlePath(),
    log,
    onShutdown: () => {
      server.close();
      publisher.close();
      fs.rmSync(socket, { force: true });
      process.exit(0);
    },
  });
  const server = new TtrpcServer([service.definition()]);
  server.onError = (err) => log(`error: ${err.message}`);
  const trace = process.env.SMOLVM_SHIM_TRACE;
  if (trace) server.onFrame = (direction, bytes) => fs.appendFileSync(trace, JSON.stringify({ direction, frame: bytes.toString('base64') }) + '\n', { mode: 0o600 });
  fs.rmSync(socket, { force: true });
  try {
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.server.listen(socket, resolve);
    });
  } catch (err) {
    ready.end(`cannot listen on ${socket}: ${(err as Error).message}`);
    return 1;
  }
  fs.chmodSync(socket, 0o600);
  // Signals end the VMs first: a shim that is told to go leaves nothing running.
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => void service.close().finally(() => {
      fs.rmSync(socket, { force: true });
      process.exit(0);
    }));
  }
  ready.end('ready\n');
  return new Promise<number>(() => undefined);
}

/** After a shim died: its VM and rootfs mount go, and containerd gets the exit it will record. */
async function remove(flags: ShimFlags): Promise<number> {
  const bundle = flags.bundle || process.cwd();
  killRecordedVm(bundle);
  await unmountRootfs(path.join(bundle, 'rootfs'));
  fs.rmSync(socketPathFor(flags), { force: true });
  process.stdout.write(encodeMessage('containerd.task.v2.DeleteResponse', { pid: 0, exitStatus: 137, exitedAt: timestamp(Date.now()) }));
  return 0;
}

/** Shim logs go to the `log` FIFO containerd opened in the bundle (it copies them to its own log). */
function openLog(debug: boolean): (line: string) => void {
  let out: fs.WriteStream | undefined;
  try {
    out = fs.createWriteStream('', { fd: fs.openSync('log', fs.constants.O_WRONLY | fs.constants.O_NONBLOCK) });
    out.on('error', () => (out = undefined));
  } catch {
    out = undefined;
  }
  return (line: string) => {
    const text = `time="${new Date().toISOString()}" level=${debug ? 'debug' : 'info'} msg=${JSON.stringify(`smolvm: ${line}`)}\n`;
    out?.write(text);
  };
}

/** The guest agent travels beside the shim bundle (the build copies it to dist/guest). */
function agentBundlePath(): string {
  return path.join(__dirname, 'guest', 'agent.js');
}

if (require.main === module) {
  main().then(
    (code) => {
      if (code !== 0) process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`${formatError(err)}\n`);
      process.exitCode = 1;
    },
  );
}

