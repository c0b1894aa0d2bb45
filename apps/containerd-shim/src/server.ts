// The shim server (action `serve`, started by main.ts's `start`) and `delete`: everything that
// needs the runtime, the drivers and the protobuf schemas.
import fs from 'node:fs';
import path from 'node:path';
import { formatError } from '@smolvm/common';
import '@smolvm/drivers';
import { EventPublisher } from './events';
import { parseFlags, socketPathFor, type ShimFlags } from './flags';
import { unmountRootfs } from './mounts';
import { encodeMessage, timestamp } from './proto';
import { TaskService } from './service';
import { TtrpcServer } from './ttrpc';
import { killRecordedVm } from './vm-record';

export function runAction(flags: ShimFlags): Promise<number> {
  if (flags.action === 'serve') return serve(flags);
  if (flags.action === 'delete') return remove(flags);
  throw new Error(`unknown action '${flags.action}'`);
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
  if (trace)
    server.onFrame = (direction, bytes) =>
      fs.appendFileSync(trace, JSON.stringify({ direction, frame: bytes.toString('base64') }) + '\n', { mode: 0o600 });
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
    process.once(
      signal,
      () =>
        void service.close().finally(() => {
          fs.rmSync(socket, { force: true });
          process.exit(0);
        }),
    );
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
  process.stdout.write(
    encodeMessage('containerd.task.v2.DeleteResponse', { pid: 0, exitStatus: 137, exitedAt: timestamp(Date.now()) }),
  );
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
  runAction(parseFlags(process.argv.slice(2))).then(
    (code) => {
      if (code !== 0) process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`${formatError(err)}\n`);
      process.exitCode = 1;
    },
  );
}
