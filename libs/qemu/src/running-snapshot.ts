// Snapshots of running VMs (machine snapshots, docs/architecture.md#snapshots-and-forks). A
// running VM's RAM is not a file we can copy: a restored VM maps its boot snapshot's RAM file
// privately, so what it changed lives in QEMU's anonymous copy-on-write pages. So:
//   1. pause it and migrate its whole state (RAM included) into a stream file; the caller copies
//      its writable disks while it is still paused; then it runs on (paused only for this);
//   2. offline, a twin QEMU with a fresh RAM file mapped *shared* loads that stream (its guest
//      never runs), then saves its device state with x-ignore-shared: the RAM stays in the file.
// The result is a snapshot directory like a boot snapshot's (memory, state, qemu.json), which
// restoreQemuVm maps copy-on-write: every copy shares the snapshot's RAM pages until it writes.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { SnapshotError, type VmSpec } from '@smolvm/driver-api';
import { launchQemu, type LaunchOptions } from './launch';
import { STATE_FD } from './prestart';
import { SNAPSHOT_FILES, fsyncFile, migrateToFile, writeSnapshotInfo } from './snapshot';
import type { QemuVm } from './vm';

const STREAM_FILE = '.stream';
const LOAD_TIMEOUT_MS = 5 * 60_000;
/** A full RAM stream is far bigger than a device state: up to the VM's memory. */
const MIGRATE_TIMEOUT_MS = 10 * 60_000;

/**
 * Saves the running `vm` into `stateDir` (empty, private). `whilePaused` runs while the guest is
 * paused, after its state is taken (QEMU has flushed its disks), and returns the copies it made of
 * the VM's writable disks by disk id: the twin opens those, never the live files. The VM runs
 * again whatever happens; on failure `stateDir` may hold partial files (the caller's to remove).
 */
export async function snapshotRunningQemuVm(
  vm: QemuVm,
  stateDir: string,
  whilePaused: () => Promise<Record<string, string>>,
  options: LaunchOptions = {},
): Promise<void> {
  const launched = vm.launched;
  const version = vm.qemuVersion();
  // A VM booted without its RAM in a file has a RAM block of another name: no twin can load it.
  if (!launched?.state || !version) {
    throw new SnapshotError(
      'this VM was booted cold (its RAM is not file-backed), so it cannot be snapshotted while running',
      {
        remedy: 'stop the machine and start it again without --cold (a warm start), or snapshot it while stopped',
      },
    );
  }
  const stream = path.join(stateDir, STREAM_FILE);
  let copies: Record<string, string>;
  // With x-ignore-shared off the stream carries all of the RAM (a restored VM's RAM is private
  // anyway, but the flag is per process and restores set it).
  await vm.qmp('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: false }] });
  await vm.qmp('stop');
  try {
    await migrateToFile(vm, stream, MIGRATE_TIMEOUT_MS);
    copies = await whilePaused();
  } finally {
    // Resumes from paused or from a completed migration (QEMU re-activates the disks).
    await vm.qmp('cont').catch(() => undefined);
  }
  try {
    await convert(launched.spec, launched.target, stateDir, stream, copies, options);
  } finally {
    fs.rmSync(stream, { force: true });
  }
  writeSnapshotInfo(stateDir, version);
}

/** Step 2: the twin loads the stream into a shared RAM file and saves only its device state. */
async function convert(
  source: VmSpec,
  target: NonNullable<QemuVm['launched']>['target'],
  stateDir: string,
  stream: string,
  copies: Record<string, string>,
  options: LaunchOptions,
): Promise<void> {
  const memoryFile = path.join(stateDir, SNAPSHOT_FILES.memory);
  fs.writeFileSync(memoryFile, '', { mode: 0o600 });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-twin-'));
  // The twin's chardev and NIC connect as clients: something must listen, though the guest never runs.
  const listeners: net.Server[] = [];
  const sockets: net.Socket[] = [];
  const listen = async (file: string) => {
    const server = net.createServer((s) => {
      sockets.push(s);
      s.on('error', () => undefined);
    });
    listeners.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(file, resolve);
    });
    return file;
  };
  let twin: QemuVm | undefined;
  try {
    const spec: VmSpec = {
      ...source,
      disks: (source.disks ?? []).map((d) => {
        if (d.readOnly) return d;
        const copy = copies[d.id];
        if (!copy) throw new SnapshotError(`no copy of the VM's writable disk ${d.id}`);
        return { ...d, path: copy, readOnly: true };
      }),
      shares: (source.shares ?? []).map((s) => ({ ...s, readOnly: true })),
      agent: { socketPath: await listen(path.join(work, 'agent.sock')) },
      ...(source.network
        ? { network: { ...source.network, socketPath: await listen(path.join(work, 'net.sock')) } }
        : {}),
      consoleLog: path.join(work, 'console.log'),
      runDir: path.join(work, 'run'),
    };
    const streamFd = fs.openSync(stream, 'r');
    try {
      // The stream holds the RAM: x-ignore-shared stays off until it is loaded.
      const script = [
        { execute: 'qmp_capabilities' },
        { execute: 'migrate-incoming', arguments: { uri: `fd:${STATE_FD}` } },
      ]
        .map((c) => JSON.stringify(c) + '\n')
        .join('');
      twin = await launchQemu(spec, target, {
        ...options,
        state: { memoryFile, share: true, incoming: true },
        stdin: script,
        fds: [streamFd],
      });
    } finally {
      fs.closeSync(streamFd);
    }
    await waitLoaded(twin);
    await twin.qmp('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: true }] });
    const tmp = path.join(stateDir, `.${SNAPSHOT_FILES.state}.tmp`);
    await migrateToFile(twin, tmp);
    fsyncFile(memoryFile);
    fs.renameSync(tmp, path.join(stateDir, SNAPSHOT_FILES.state));
  } finally {
    await twin?.kill();
    for (const s of sockets) s.destroy();
    for (const l of listeners) l.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** The twin waits paused (-S) once the stream is loaded. */
async function waitLoaded(vm: QemuVm): Promise<void> {
  const deadline = Date.now() + LOAD_TIMEOUT_MS;
  for (;;) {
    const status = (await vm.qmp('query-status').catch(() => ({ status: 'gone' }))) as { status?: string };
    if (status.status === 'paused' || status.status === 'postmigrate') return;
    if (status.status === 'gone' || (status.status !== 'inmigrate' && status.status !== 'prelaunch')) {
      const output = vm
        .hypervisorOutput()
        .filter((l) => l.trim())
        .slice(-2)
        .join('; ');
      throw new SnapshotError(`loading the running VM's state failed (${status.status}${output ? `: ${output}` : ''})`);
    }
    if (Date.now() > deadline)
      throw new SnapshotError(`loading the running VM's state took longer than ${LOAD_TIMEOUT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
