// Boot snapshots with QEMU (DESIGN §3, measured recipe): guest RAM is a file; the VM that will be
// saved maps it shared, so the file *is* its RAM. Saving writes only the device state (tens of
// KB: the `x-ignore-shared` capability leaves shared RAM out of the stream). A restore starts
// QEMU with the same command line, the RAM file mapped private (copy-on-write, so one snapshot
// serves any number of VMs at once) and `-incoming defer`, then loads the device state.
import fs from 'node:fs';
import path from 'node:path';
import { SnapshotError, type VmSpec } from '@smolvm/driver-api';
import { AGENT_CHARDEV_ID } from './argv';
import { launchQemu, type LaunchOptions } from './launch';
import type { QmpVersion } from './qmp';
import type { QemuTarget } from './target';
import type { QemuVm } from './vm';

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
export async function launchSaveable(spec: VmSpec, target: QemuTarget, stateDir: string, options: LaunchOptions = {}): Promise<QemuVm> {
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
  await vm.qmp('migrate', { uri: `exec:cat > ${shellQuote(tmp)}` });
  const deadline = Date.now() + SAVE_TIMEOUT_MS;
  for (;;) {
    const info = (await vm.qmp('query-migrate')) as { status?: string; 'error-desc'?: string };
    if (info.status === 'completed') break;
    if (info.status === 'failed' || info.status === 'cancelled') {
      throw new SnapshotError(`saving the VM state failed: ${info['error-desc'] ?? info.status}`);
    }
    if (Date.now() > deadline) throw new SnapshotError(`saving the VM state took longer than ${SAVE_TIMEOUT_MS / 1000} s`);
    await delay(POLL_MS);
  }
  fs.chmodSync(tmp, 0o600);
  fsyncFile(tmp);
  fsyncFile(path.join(stateDir, SNAPSHOT_FILES.memory));
  fs.renameSync(tmp, path.join(stateDir, SNAPSHOT_FILES.state));
  // QEMU sized the RAM file to the VM's memory.
  const memoryMiB = fs.statSync(path.join(stateDir, SNAPSHOT_FILES.memory)).size / MIB;
  const info: SnapshotInfo = { qemu: version.qemu, package: version.package, memoryMiB };
  fs.writeFileSync(path.join(stateDir, SNAPSHOT_FILES.info), JSON.stringify(info) + '\n', { mode: 0o600 });
}

/**
 * Starts a VM from `stateDir`. `spec` must have the shape of the saved VM (cpus, memory, the
 * same devices in the same order); disk and share paths may differ. Resolves once the guest
 * runs again; throws SnapshotError, leaving no process, when the snapshot does not fit.
 */
export async function restoreQemuVm(spec: VmSpec, target: QemuTarget, stateDir: string, options: LaunchOptions = {}): Promise<QemuVm> {
  const memoryFile = path.join(stateDir, SNAPSHOT_FILES.memory);
  const stateFile = path.join(stateDir, SNAPSHOT_FILES.state);
  let info: SnapshotInfo;
  try {
    info = JSON.parse(fs.readFileSync(path.join(stateDir, SNAPSHOT_FILES.info), 'utf8')) as SnapshotInfo;
  } catch (err) {
    throw new SnapshotError(`unreadable snapshot info in ${stateDir}: ${(err as Error).message}`);
  }
  if (info.memoryMiB !== spec.memoryMiB) throw new SnapshotError(`the snapshot has ${info.memoryMiB} MiB of RAM, the VM ${spec.memoryMiB} MiB`);
  // QEMU grows a short RAM file with zeros (and would write to the snapshot doing so): a
  // truncated file must never get that far.
  const memorySize = fs.statSync(memoryFile, { throwIfNoEntry: false })?.size;
  if (memorySize !== spec.memoryMiB * MIB) throw new SnapshotError(`the snapshot's RAM file is ${memorySize ?? 'missing'} bytes, expected ${spec.memoryMiB * MIB}`);
  if (!fs.existsSync(stateFile)) throw new SnapshotError(`the snapshot has no device state file ${stateFile}`);

  const vm = await launchQemu(spec, target, { ...options, state: { memoryFile, share: false, incoming: true } });
  try {
    const version = vm.qemuVersion();
    if (!version || JSON.stringify(version.qemu) !== JSON.stringify(info.qemu) || version.package !== info.package) {
      throw new SnapshotError(`the snapshot was saved by QEMU ${describeVersion(info)}, this is QEMU ${version ? describeVersion(version) : 'unknown'}`);
    }
    await ignoreSharedRam(vm);
    await vm.qmp('migrate-incoming', { uri: `exec:cat ${shellQuote(stateFile)}` });
    await waitRunning(vm);
  } catch (err) {
    await vm.kill();
    if (err instanceof SnapshotError) throw err;
    const output = vm.hypervisorOutput().filter((l) => l.trim()).slice(-3).join('; ');
    throw new SnapshotError(`restoring the VM failed: ${(err as Error).message}${output ? ` (${output})` : ''}`, { cause: err });
  }
  return vm;
}

async function waitRunning(vm: QemuVm): Promise<void> {
  let exited = false;
  void vm.wait().then(() => (exited = true));
  const deadline = Date.now() + RESTORE_TIMEOUT_MS;
  for (;;) {
    if (exited) throw new SnapshotError(`QEMU exited while loading the snapshot: ${vm.hypervisorOutput().filter((l) => l.trim()).slice(-2).join('; ') || 'no output'}`);
    const status = (await vm.qmp('query-status').catch(() => ({ status: 'gone' }))) as { status?: string };
    if (status.status === 'running') return;
    // Saved with store-global-state=off a VM comes back running; one saved paused would not.
    if (status.status === 'paused' || status.status === 'postmigrate') {
      await vm.qmp('cont');
      continue;
    }
    if (status.status !== 'inmigrate' && status.status !== 'gone' && status.status !== 'prelaunch') {
      throw new SnapshotError(`the restored VM is in state '${status.status}'`);
    }
    if (Date.now() > deadline) throw new SnapshotError(`loading the snapshot took longer than ${RESTORE_TIMEOUT_MS / 1000} s`);
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
    const chardevs = (await vm.qmp('query-chardev')) as Array<{ label: string; filename: string; 'frontend-open'?: boolean }>;
    const agent = chardevs.find((c) => c.label === AGENT_CHARDEV_ID);
    hostGone ||= agent?.filename.startsWith('disconnected') === true;
    if (hostGone && agent?.['frontend-open'] === false) return;
    await delay(POLL_MS);
  }
}

/** Both sides must agree: with it, shared RAM is neither sent nor expected in the stream. */
async function ignoreSharedRam(vm: QemuVm): Promise<void> {
  await vm.qmp('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: true }] });
}

function describeVersion(v: { qemu: QmpVersion['qemu']; package: string }): string {
  return `${v.qemu.major}.${v.qemu.minor}.${v.qemu.micro}${v.package ? ` (${v.package.trim()})` : ''}`;
}

/** QEMU runs `exec:` URIs with /bin/sh -c. */
function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

function fsyncFile(file: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
