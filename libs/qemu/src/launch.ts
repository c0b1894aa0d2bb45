// Starts QEMU for a spec: validates, builds argv, listens for QEMU's QMP connection, spawns it
// supervised, and resolves once QEMU answers `query-status` (so it accepted the whole command
// line and loaded the kernel). On any failure nothing of ours is left: no process, no file.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { delay } from '@smolvm/common';
import { OutputTail, findExecutable, spawnSupervised, type Supervision } from '@smolvm/driver-kit';
import {
  InvalidVmSpecError,
  VmStartError,
  readLogTail,
  validateVmSpec,
  type DriverFeatures,
  type VmSpec,
} from '@smolvm/driver-api';
import { buildQemuArgv, type MachineStateArgs } from './argv';
import type { QemuRestoreRecipe } from './prestart';
import { QmpClient } from './qmp';
import type { QemuTarget, RunFiles } from './target';
import { QemuVm } from './vm';

export interface LaunchOptions {
  supervision?: Supervision;
  /** How long QEMU may take to come up (not the guest: the guest boots after this). Default 30 s. */
  startTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Guest RAM in a file, for snapshots (see snapshot.ts). */
  state?: MachineStateArgs;
  /** A restore: how it is started, kept on the VM (see prestart.ts). */
  recipe?: QemuRestoreRecipe;
  /** Written to QEMU's stdin as it starts (a restore's commands, see prestart.ts). */
  stdin?: string;
  /** Open files QEMU inherits as its fds 3, 4, ... (a restore's device state: `fd:3`). */
  fds?: number[];
}

// sun_path is 108 bytes on Linux (104 on macOS), including the terminating NUL.
const MAX_SOCKET_PATH = process.platform === 'linux' ? 107 : 103;

/**
 * The wiring launchQemu gives every guest (argv.ts): a driver on it declares these features, plus
 * whether it can snapshot.
 */
export const QEMU_WIRING: Omit<DriverFeatures, 'snapshot'> = {
  agentTransport: 'virtio-serial',
  shares: '9p',
  shareOwnership: true,
  diskLookup: 'serial',
  diskRanges: true,
  nic: 'unix-stream',
};

export function runFiles(runDir: string): RunFiles {
  return { qmpSocket: path.join(runDir, 'qmp.sock') };
}

export async function launchQemu(spec: VmSpec, target: QemuTarget, options: LaunchOptions = {}): Promise<QemuVm> {
  validateVmSpec(spec, { ...QEMU_WIRING, snapshot: options.state !== undefined });
  const files = runFiles(spec.runDir);
  checkSocketPath('runDir', files.qmpSocket);
  checkSocketPath('agent.socketPath', spec.agent.socketPath);
  if (spec.network) checkSocketPath('network.socketPath', spec.network.socketPath);
  const argv = buildQemuArgv(spec, target, files, options.state);
  const binary = findExecutable(target.binary, options.env);
  if (!binary) {
    throw new VmStartError(
      `${target.binary} not found`,
      {},
      { remedy: 'run tools/setup (installs QEMU), or put QEMU on PATH' },
    );
  }

  fs.mkdirSync(spec.runDir, { recursive: true, mode: 0o700 });
  fs.rmSync(files.qmpSocket, { force: true }); // left over if our previous process was killed
  // A stale log would make a start-up error quote the previous run.
  fs.writeFileSync(spec.consoleLog, '', { mode: 0o600 });

  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(files.qmpSocket, () => resolve());
  });
  const qmpConnection = new Promise<net.Socket>((resolve) => server.once('connection', resolve));

  const stderr = new OutputTail();
  const proc = spawnSupervised(binary, argv, {
    supervision: options.supervision,
    stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe', ...(options.fds ?? [])],
    env: options.env,
  });
  if (options.stdin !== undefined) {
    proc.child.stdin?.on('error', () => undefined);
    proc.child.stdin?.end(options.stdin);
  }
  proc.child.stderr?.setEncoding('utf8');
  proc.child.stderr?.on('data', (chunk: string) => stderr.push(chunk));
  const closed = new Promise<void>((resolve) => proc.child.once('close', () => resolve()));
  const exited = new Promise<string>((resolve) => {
    proc.child.once('error', (err) => resolve(`cannot run ${binary}: ${err.message}`));
    // 'close', not 'exit': by then all of stderr has been read, and the error can quote it.
    proc.child.once('close', (code, signal) =>
      resolve(signal ? `QEMU was killed by ${signal}` : `QEMU exited with status ${code}`),
    );
  });
  const timeoutMs = options.startTimeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<string>(
    (resolve) => (timer = setTimeout(() => resolve(`QEMU did not come up within ${timeoutMs} ms`), timeoutMs)),
  );

  let qmp: QmpClient | undefined;
  const ready = (async () => {
    qmp = await QmpClient.negotiate(await qmpConnection, timeoutMs);
    await qmp.execute('query-status');
  })();
  let failure = await Promise.race([ready.then(() => undefined), exited, timedOut]).catch((err: Error) => err.message);
  if (failure !== undefined) {
    // A QMP error is usually QEMU dying: its exit status is the better summary.
    failure = await Promise.race([exited, delay(1_000, { unref: true }).then(() => failure)]);
  }
  clearTimeout(timer);
  // The socket did its job once QEMU connected; an unlinked socket cannot go stale.
  server.close();
  fs.rmSync(files.qmpSocket, { force: true });

  if (failure !== undefined || !qmp) {
    qmp?.close();
    await stopChild(proc.child);
    proc.release();
    if (proc.child.pid !== undefined) await Promise.race([closed, delay(1_000, { unref: true })]);
    // KVM that fails on a host (e.g. software KVM that aborts QEMU at launch) must be named as
    // the cause: QEMU's own words may not say it, and software emulation is the way out.
    const underKvm = target.accel === 'kvm';
    throw new VmStartError(
      `${failure ?? 'QEMU did not come up'}${underKvm ? ' (accelerator: KVM)' : ''}`,
      {
        hypervisorOutput: stderr.get().map(stripProgramPrefix),
        consoleTail: readLogTail(spec.consoleLog),
        consoleLog: spec.consoleLog,
      },
      underKvm
        ? {
            remedy: `if KVM does not work on this host, use software emulation: SMOLVM_ACCEL=tcg (console log: ${spec.consoleLog})`,
          }
        : {},
    );
  }
  return new QemuVm({
    child: proc.child,
    qmp,
    stderr,
    ownFiles: [files.qmpSocket],
    release: proc.release,
    ...(options.recipe ? { recipe: options.recipe } : {}),
    launched: { spec, target, ...(options.state ? { state: options.state } : {}) },
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await gone;
}

function checkSocketPath(field: string, socketPath: string): void {
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
    throw new InvalidVmSpecError(field, `unix socket path ${socketPath} is longer than ${MAX_SOCKET_PATH} bytes`, {
      remedy: 'use a shorter directory (for example a shorter SMOLVM_HOME)',
    });
  }
}

/** "qemu-system-x86_64: -chardev ...: msg" -> "-chardev ...: msg": the program name is noise. */
function stripProgramPrefix(line: string): string {
  return line.replace(/^qemu(-system-[\w-]+)?: /, '');
}
