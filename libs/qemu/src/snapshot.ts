// Boot snapshots with QEMU (docs/architecture.md#warm-starts; the recipe: README.md): guest RAM is a file; the VM that
// will be saved maps it shared, so the file *is* its RAM. Saving writes only the device state (tens of
// KB: the `x-ignore-shared` capability leaves shared RAM out of the stream). A restore starts
// QEMU with the same command line, the RAM file mapped private (copy-on-write, so one snapshot
// serves any number of VMs at once) and `-incoming defer`, then loads the device state.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { delay } from '@smolvm/common';
import { PrestartMismatchError, SnapshotError, SnapshotTimeoutError, type VmSpec } from '@smolvm/driver-api';
import { AGENT_CHARDEV_ID, buildQemuArgv, type MachineStateArgs } from './argv';
import { launchQemu, runFiles, type LaunchOptions } from './launch';
import { restoreScript, type PrestartedQemu, type QemuRestoreRecipe } from './prestart';
import { QmpClient, type QmpVersion } from './qmp';
import { defaultSupervision, findExecutable, pdeathsigCommand } from '@smolvm/driver-kit';
import type { QemuTarget } from './target';
import { QemuVm } from './vm';

/** Files a snapshot directory holds (the caller owns the directory and everything else in it). */
export const SNAPSHOT_FILES = { memory: 'memory', state: 'state', info: 'qemu.json' } as const;

const MIB = 1024 * 1024;
const SAVE_TIMEOUT_MS = 60_000;
const RESTORE_TIMEOUT_MS = 60_000;
const POLL_MS = 2;

interface SnapshotInfo {
  qemu: QmpVersion['qemu'];
  package: string;
  memoryMiB: number;
}

/** Starts a VM that can be saved into `stateDir` later. */
export async function launchSaveable(
  spec: VmSpec,
  target: QemuTarget,
  stateDir: string,
  options: LaunchOptions = {},
): Promise<QemuVm> {
  const memoryFile = path.join(stateDir, SNAPSHOT_FILES.memory);
  // Created by us, owner-only: QEMU would create it with its umask's permissions.
  fs.writeFileSync(memoryFile, '', { mode: 0o600 });
  const vm = await launchQemu(spec, target, { ...options, state: { memoryFile, share: true, incoming: false } });
  try {
    await ignoreSharedRam(vm);
  } catch (err) {
    await vm.kill();
    throw err;
  }
  return vm;
}

/**
 * Pauses the VM and writes its device state into `stateDir`, crash-safely (temp file, fsync,
 * rename; the RAM file is fsynced too). The VM stays paused: the caller ends it.
 */
export async function saveQemuVm(vm: QemuVm, stateDir: string): Promise<void> {
  const version = vm.qemuVersion();
  if (!version) throw new SnapshotError('cannot save: QEMU did not report its version');
  const tmp = path.join(stateDir, `.${SNAPSHOT_FILES.state}.tmp`);
  await agentChannelClosed(vm);
  await vm.qmp('stop');
  await migrateToFile(vm, tmp);
  fsyncFile(path.join(stateDir, SNAPSHOT_FILES.memory));
  fs.renameSync(tmp, path.join(stateDir, SNAPSHOT_FILES.state));
  writeSnapshotInfo(stateDir, version);
}

/** Writes qemu.json: what restores check the snapshot against (QEMU version, RAM size from the RAM file). */
export function writeSnapshotInfo(stateDir: string, version: QmpVersion): void {
  // QEMU sized the RAM file to the VM's memory.
  const memoryMiB = fs.statSync(path.join(stateDir, SNAPSHOT_FILES.memory)).size / MIB;
  const info: SnapshotInfo = { qemu: version.qemu, package: version.package, memoryMiB };
  fs.writeFileSync(path.join(stateDir, SNAPSHOT_FILES.info), JSON.stringify(info) + '\n', { mode: 0o600 });
}

/**
 * Migrates the (paused) VM's state into `file` (owner-only, fsynced), with whatever migration
 * capabilities are set. Throws SnapshotError when QEMU fails or takes longer than the limit.
 */
export async function migrateToFile(vm: QemuVm, file: string, timeoutMs = SAVE_TIMEOUT_MS): Promise<void> {
  const received = await receiveState(file);
  try {
    await vm.qmp('migrate', { uri: `unix:${received.socketPath}` });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const info = (await vm.qmp('query-migrate')) as { status?: string; 'error-desc'?: string };
      if (info.status === 'completed') break;
      if (info.status === 'failed' || info.status === 'cancelled') {
        throw new SnapshotError(`saving the VM state failed: ${info['error-desc'] ?? info.status}`);
      }
      if (Date.now() > deadline) throw new SnapshotError(`saving the VM state took longer than ${timeoutMs / 1000} s`);
      await delay(POLL_MS);
    }
    // Completed means QEMU sent everything and closes its end: the file has it all once written.
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>(
      (_, reject) =>
        (timer = setTimeout(
          () => reject(new SnapshotError(`saving the VM state took longer than ${timeoutMs / 1000} s`)),
          Math.max(0, deadline - Date.now()),
        )),
    );
    await Promise.race([received.done, late]).finally(() => clearTimeout(timer));
  } finally {
    received.close();
  }
  fs.chmodSync(file, 0o600);
  fsyncFile(file);
}

/**
 * Starts a VM from `stateDir`. `spec` must have the shape of the saved VM (cpus, memory, the
 * same devices in the same order); disk and share paths may differ. Resolves once the guest
 * runs again; throws SnapshotError, leaving no process, when the snapshot does not fit.
 */
export async function restoreQemuVm(
  spec: VmSpec,
  target: QemuTarget,
  stateDir: string,
  options: LaunchOptions & { prestarted?: PrestartedQemu } = {},
): Promise<QemuVm> {
  const { prestarted, ...launchOptions } = options;
  try {
    checkSnapshotFiles(spec, stateDir);
  } catch (err) {
    prestarted?.discard();
    throw err;
  }
  const state: MachineStateArgs = {
    memoryFile: path.join(stateDir, SNAPSHOT_FILES.memory),
    share: false,
    incoming: true,
  };
  const stateFile = path.join(stateDir, SNAPSHOT_FILES.state);
  const recipe = recipeFor(spec, target, state, stateFile, launchOptions);
  if (prestarted) return adoptPrestarted(prestarted, recipe, stateDir);

  const stateFd = fs.openSync(stateFile, 'r');
  let vm: QemuVm;
  try {
    vm = await launchQemu(spec, target, {
      ...launchOptions,
      state,
      stdin: restoreScript(),
      fds: [stateFd],
      ...(recipe ? { recipe } : {}),
    });
  } finally {
    fs.closeSync(stateFd);
  }
  try {
    checkVersion(vm, stateDir);
    await waitRunning(vm);
  } catch (err) {
    await vm.kill();
    throw restoreFailure(vm, err);
  }
  return vm;
}

/** The snapshot's files fit the spec: a short RAM file never reaches QEMU (which would grow it). */
function checkSnapshotFiles(spec: VmSpec, stateDir: string): void {
  const memoryFile = path.join(stateDir, SNAPSHOT_FILES.memory);
  const stateFile = path.join(stateDir, SNAPSHOT_FILES.state);
  const info = readInfo(stateDir);
  if (info.memoryMiB !== spec.memoryMiB)
    throw new SnapshotError(`the snapshot has ${info.memoryMiB} MiB of RAM, the VM ${spec.memoryMiB} MiB`);
  // QEMU grows a short RAM file with zeros (and would write to the snapshot doing so): a
  // truncated file must never get that far.
  const memorySize = fs.statSync(memoryFile, { throwIfNoEntry: false })?.size;
  if (memorySize !== spec.memoryMiB * MIB)
    throw new SnapshotError(
      `the snapshot's RAM file is ${memorySize ?? 'missing'} bytes, expected ${spec.memoryMiB * MIB}`,
    );
  if (!fs.existsSync(stateFile)) throw new SnapshotError(`the snapshot has no device state file ${stateFile}`);
}

function readInfo(stateDir: string): SnapshotInfo {
  try {
    return JSON.parse(fs.readFileSync(path.join(stateDir, SNAPSHOT_FILES.info), 'utf8')) as SnapshotInfo;
  } catch (err) {
    throw new SnapshotError(`unreadable snapshot info in ${stateDir}: ${(err as Error).message}`);
  }
}

function checkVersion(vm: QemuVm, stateDir: string): void {
  const info = readInfo(stateDir);
  const version = vm.qemuVersion();
  // Field by field: qemu.json written from a pack's manifest need not keep QMP's key order.
  const same =
    version !== undefined &&
    (['major', 'minor', 'micro'] as const).every((k) => version.qemu[k] === info.qemu?.[k]) &&
    version.package === info.package;
  if (!version || !same) {
    throw new SnapshotError(
      `the snapshot was saved by QEMU ${describeVersion(info)}, this is QEMU ${version ? describeVersion(version) : 'unknown'}`,
    );
  }
}

function restoreFailure(vm: QemuVm, err: unknown): SnapshotError {
  if (err instanceof SnapshotError) return err;
  const output = vm
    .hypervisorOutput()
    .filter((l) => l.trim())
    .slice(-3)
    .join('; ');
  return new SnapshotError(`restoring the VM failed: ${(err as Error).message}${output ? ` (${output})` : ''}`, {
    cause: err,
  });
}

/**
 * How this restore starts QEMU, as a recipe for early restores (prestart.ts): only for the
 * pdeathsig supervision (one process, nothing else to start). Its run directory is the driver's
 * until the caller names the one all per-run paths are in (recipeIn).
 */
function recipeFor(
  spec: VmSpec,
  target: QemuTarget,
  state: MachineStateArgs,
  stateFile: string,
  options: LaunchOptions,
): QemuRestoreRecipe | undefined {
  if ((options.supervision ?? defaultSupervision()) !== 'pdeathsig') return undefined;
  const binary = findExecutable(target.binary, options.env);
  if (!binary) return undefined;
  try {
    const command = pdeathsigCommand(binary, buildQemuArgv(spec, target, runFiles(spec.runDir), state));
    return {
      ...command,
      runDir: spec.runDir,
      driverDir: spec.runDir,
      qmpSocket: runFiles(spec.runDir).qmpSocket,
      consoleLog: spec.consoleLog,
      stateFile,
      memoryFile: state.memoryFile,
      memoryBytes: spec.memoryMiB * MIB,
    };
  } catch {
    return undefined;
  }
}

/**
 * Takes over a QEMU a prestart began, if it is exactly what this restore would start (same
 * program, arguments and state file); otherwise ends it: PrestartMismatchError, and the caller
 * restores the usual way. A prestarted QEMU whose snapshot fails to load is a SnapshotError.
 */
async function adoptPrestarted(
  pre: PrestartedQemu,
  recipe: QemuRestoreRecipe | undefined,
  stateDir: string,
): Promise<QemuVm> {
  const child = pre.child;
  if (
    !recipe ||
    !child ||
    pre.kind !== 'qemu-restore' ||
    pre.file !== recipe.file ||
    pre.stateFile !== recipe.stateFile ||
    !sameArgs(pre.args, recipe.args)
  ) {
    pre.discard();
    throw new PrestartMismatchError('the early-started QEMU is not the one this restore needs');
  }
  // QEMU connects to the QMP socket as it starts; by now it has long done so, or died.
  let qmp: QmpClient;
  try {
    const connection = await Promise.race([
      pre.qmpConnection,
      pre.failed.then((why) => Promise.reject(new Error(why))),
    ]);
    qmp = await QmpClient.negotiate(connection, RESTORE_TIMEOUT_MS);
  } catch (err) {
    pre.discard();
    throw new PrestartMismatchError(`the early-started QEMU failed: ${(err as Error).message}`);
  }
  const vm = new QemuVm({
    child,
    qmp,
    stderr: pre.stderr,
    ownFiles: [pre.qmpSocket],
    release: () => undefined,
    recipe,
  });
  try {
    checkVersion(vm, stateDir);
    await waitRunning(vm);
  } catch (err) {
    await vm.kill();
    throw restoreFailure(vm, err);
  }
  return vm;
}

function sameArgs(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

async function waitRunning(vm: QemuVm): Promise<void> {
  let exited = false;
  void vm.wait().then(() => (exited = true));
  const deadline = Date.now() + RESTORE_TIMEOUT_MS;
  for (;;) {
    if (exited)
      throw new SnapshotError(
        `QEMU exited while loading the snapshot: ${
          vm
            .hypervisorOutput()
            .filter((l) => l.trim())
            .slice(-2)
            .join('; ') || 'no output'
        }`,
      );
    const status = (await vm.qmp('query-status').catch(() => ({ status: 'gone' }))) as { status?: string };
    if (status.status === 'running') return;
    // Restored with -S (argv.ts), the VM waits paused once its state is loaded: started here.
    if (status.status === 'paused' || status.status === 'postmigrate') {
      await vm.qmp('cont');
      continue;
    }
    if (status.status !== 'inmigrate' && status.status !== 'gone' && status.status !== 'prelaunch') {
      throw new SnapshotError(`the restored VM is in state '${status.status}'`);
    }
    if (Date.now() > deadline)
      throw new SnapshotTimeoutError(`loading the snapshot took longer than ${RESTORE_TIMEOUT_MS / 1000} s`);
    await delay(POLL_MS);
  }
}

/**
 * The caller closed its end of the agent channel before saving. Save once QEMU has seen it go
 * and the guest has closed its port in reaction (QMP shows the port's guest side as the chardev's
 * `frontend-open`): the saved guest is then waiting for a host, and the restored VM's new
 * connection reaches it as a port-open event, so the agent greets its new host straight away.
 * Not seen within the limit: saved anyway (the agent also recovers from a host that greets it
 * twice, only later).
 */
async function agentChannelClosed(vm: QemuVm, limitMs = 3_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  let hostGone = false;
  while (Date.now() < deadline) {
    const chardevs = (await vm.qmp('query-chardev')) as Array<{
      label: string;
      filename: string;
      'frontend-open'?: boolean;
    }>;
    const agent = chardevs.find((c) => c.label === AGENT_CHARDEV_ID);
    hostGone ||= agent?.filename.startsWith('disconnected') === true;
    if (hostGone && agent?.['frontend-open'] === false) return;
    await delay(POLL_MS);
  }
}

/**
 * Where QEMU sends the device state (`migrate unix:`): QEMU's sandbox forbids the `exec:` URI (no
 * process may be started), and its `fd:` needs a descriptor passed over QMP, which Node cannot
 * send. Listens in a fresh private directory (the run directory is gone by now; the snapshot's
 * may be too long a socket path) and writes what the first connection sends to `file`
 * (owner-only). `done` settles once the stream ended and the file is written; `close` removes
 * the socket and its directory and ends whatever is still open.
 */
async function receiveState(file: string): Promise<{ socketPath: string; done: Promise<void>; close(): void }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-save-'));
  const socketPath = path.join(dir, 'state.sock');
  const server = net.createServer();
  let connection: net.Socket | undefined;
  const done = new Promise<void>((resolve, reject) => {
    server.once('connection', (socket) => {
      connection = socket;
      server.close();
      pipeline(socket, fs.createWriteStream(file, { mode: 0o600 })).then(resolve, (err: Error) =>
        reject(new SnapshotError(`writing the VM state failed: ${err.message}`)),
      );
    });
  });
  done.catch(() => undefined);
  const close = () => {
    connection?.destroy();
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
  } catch (err) {
    close();
    throw new SnapshotError(`cannot receive the VM state: ${(err as Error).message}`);
  }
  return { socketPath, done, close };
}

/** Both sides must agree: with it, shared RAM is neither sent nor expected in the stream. */
async function ignoreSharedRam(vm: QemuVm): Promise<void> {
  await vm.qmp('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: true }] });
}

function describeVersion(v: { qemu: QmpVersion['qemu']; package: string }): string {
  return `${v.qemu.major}.${v.qemu.minor}.${v.qemu.micro}${v.package ? ` (${v.package.trim()})` : ''}`;
}

export function fsyncFile(file: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
