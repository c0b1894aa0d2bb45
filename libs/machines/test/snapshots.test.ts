// The snapshot store and the snapshot/fork API on stopped machines (no VM): tags, ids, sizes,
// dependents, crash safety with injected failures and leftovers of killed processes, damage.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConflictError, UsageError } from '@smolvm/common';
import * as disks from '../src/disks';
import { Machines, SnapshotDamagedError, SnapshotNotFoundError } from '../src';

let home: string;
let machines: Machines;
const SMALL = { storageGiB: 1, overlayGiB: 1, cpus: 1, memoryMiB: 256 };

beforeEach(async () => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-snapshots-'));
  machines = new Machines({ env: { ...process.env, SMOLVM_HOME: home } });
  await machines.create({ name: 'src', ...SMALL, ports: [{ hostPort: 18080, guestPort: 80 }], env: ['A=1'] });
});
afterEach(() => {
  jest.restoreAllMocks();
  fs.rmSync(home, { recursive: true, force: true });
});

function stagingEntries(): string[] {
  const dir = path.join(machines.snapshots.root, '.staging');
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

describe('snapshots of a stopped machine', () => {
  it('are tagged 1, 2, ... or as asked, owner-only, sparse, and listed with their source', async () => {
    const first = await machines.createSnapshot('src');
    const second = await machines.createSnapshot('src');
    const named = await machines.createSnapshot('src', { tag: 'warm' });
    expect([first.id, second.id, named.id]).toEqual(['src:1', 'src:2', 'src:warm']);
    expect(first).toMatchObject({ machine: 'src', tag: '1', running: false, dependents: [] });
    // Only the blocks in use: far below the 2 GiB of apparent disk size.
    expect(first.sizeBytes).toBeGreaterThan(0);
    expect(first.sizeBytes).toBeLessThan(200 * 1024 * 1024);
    expect((await machines.listSnapshots()).map((s) => s.id)).toEqual(['src:1', 'src:2', 'src:warm']);
    const dir = machines.snapshots.dir('src:1');
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(machines.snapshots.root).mode & 0o777).toBe(0o700);
    for (const f of fs.readdirSync(dir)) expect(fs.statSync(path.join(dir, f)).mode & 0o077).toBe(0);
    expect(await machines.getSnapshot('src:2')).toMatchObject({ id: 'src:2' });
  });

  it('refuses an existing tag, a bad tag or id, and an unknown snapshot, each with one line', async () => {
    await machines.createSnapshot('src', { tag: 'a' });
    await expect(machines.createSnapshot('src', { tag: 'a' })).rejects.toThrow(
      new ConflictError('snapshot "src:a" already exists'),
    );
    await expect(machines.createSnapshot('src', { tag: '../x' })).rejects.toBeInstanceOf(UsageError);
    await expect(machines.getSnapshot('nocolon')).rejects.toBeInstanceOf(UsageError);
    await expect(machines.getSnapshot('src:../../etc')).rejects.toBeInstanceOf(UsageError);
    await expect(machines.getSnapshot('src:zz')).rejects.toBeInstanceOf(SnapshotNotFoundError);
    await expect(machines.removeSnapshot('src:zz')).rejects.toBeInstanceOf(SnapshotNotFoundError);
  });
});

describe('machines from a snapshot', () => {
  it('get qcow2 disks over the snapshot, the source settings but none of its ports, and block removal until deleted', async () => {
    const snap = await machines.createSnapshot('src');
    const fork = await machines.createMachineFromSnapshot('copy', snap.id, {
      ports: [{ hostPort: 18081, guestPort: 80 }],
    });
    expect(fork).toMatchObject({
      fromSnapshot: 'src:1',
      env: ['A=1'],
      memoryMiB: 256,
      ports: [{ hostPort: 18081, guestPort: 80 }],
    });
    const bare = await machines.createMachineFromSnapshot('copy2', snap.id);
    expect(bare.ports).toEqual([]);
    const info = JSON.parse(
      spawnSync('qemu-img', ['info', '--output=json', machines.files('copy').storageDisk], { encoding: 'utf8' }).stdout,
    ) as { format: string; 'backing-filename': string; 'virtual-size': number };
    expect(info.format).toBe('qcow2');
    expect(info['backing-filename']).toBe(path.join(machines.snapshots.dir('src:1'), 'storage.ext4'));
    expect(info['virtual-size']).toBe(1024 ** 3);
    // The fork's disk holds only its own changes.
    expect(fs.statSync(machines.files('copy').storageDisk).size).toBeLessThan(1024 * 1024);

    expect((await machines.getSnapshot(snap.id)).dependents).toEqual(['copy', 'copy2']);
    await expect(machines.removeSnapshot(snap.id)).rejects.toThrow(
      'snapshot "src:1" is in use by machines "copy", "copy2"',
    );
    // Disk tools that would corrupt a qcow2 layer are refused.
    await expect(machines.resize('copy', { storageGiB: 2 })).rejects.toThrow('machine "copy" is a fork of a snapshot');
    await expect(machines.prune('copy')).rejects.toThrow('machine "copy" is a fork of a snapshot');
    // Deleting the source does not touch the snapshot; deleting the dependents frees it.
    await machines.delete('src');
    await machines.delete('copy');
    await machines.delete('copy2');
    await machines.removeSnapshot(snap.id);
    expect(await machines.listSnapshots()).toEqual([]);
    expect(fs.existsSync(path.join(machines.snapshots.root, 'src'))).toBe(false);
  });

  it('a snapshot of a fork flattens its disks (raw again, source files intact)', async () => {
    const snap = await machines.createSnapshot('src');
    await machines.createMachineFromSnapshot('copy', snap.id);
    const again = await machines.createSnapshot('copy');
    const file = path.join(machines.snapshots.dir(again.id), 'storage.ext4');
    expect(spawnSync('e2fsck', ['-fn', file]).status).toBe(0);
    expect(fs.statSync(file).size).toBe(1024 ** 3);
  });
});

describe('fork of a snapshot id', () => {
  it('makes and starts copies of that snapshot without taking a new one', async () => {
    const snap = await machines.createSnapshot('src');
    await machines.createMachineFromSnapshot('earlier', snap.id);
    // Starting is the supervisor's (a VM): what matters here is what fork asks of it.
    const start = jest
      .spyOn(machines, 'start')
      .mockImplementation(async (name) => ({ record: machines.store.get(name), alreadyRunning: false }));
    const out = await machines.forkMachine('src:1', ['w1', 'w2']);
    expect(out.machines).toEqual(['w1', 'w2']);
    expect(start.mock.calls.map((c) => c[0])).toEqual(['w1', 'w2']);
    expect(out.snapshot).toMatchObject({ id: 'src:1', dependents: ['earlier', 'w1', 'w2'] });
    expect(machines.store.get('w1')).toMatchObject({ fromSnapshot: 'src:1', ports: [] });
    expect((await machines.listSnapshots()).map((s) => s.id)).toEqual(['src:1']);
  });

  it('refuses a missing or malformed snapshot id with one line, making nothing', async () => {
    const start = jest.spyOn(machines, 'start');
    const missing = await machines.forkMachine('src:9', ['w']).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(SnapshotNotFoundError);
    expect((missing as Error).message).toBe('snapshot "src:9" does not exist');
    await expect(machines.forkMachine('src:bad tag', ['w'])).rejects.toThrow(UsageError);
    await expect(machines.forkMachine('../x:1', ['w'])).rejects.toThrow(UsageError);
    expect(start).not.toHaveBeenCalled();
    expect(machines.store.exists('w')).toBe(false);
    expect(await machines.listSnapshots()).toEqual([]);
  });
});

describe('a one-shot run from a snapshot', () => {
  it('starts an ephemeral run-<hex> machine over the snapshot, and removes it when its start fails', async () => {
    const snap = await machines.createSnapshot('src');
    const start = jest
      .spyOn(machines, 'start')
      .mockImplementation(async (name) => ({ record: machines.store.get(name), alreadyRunning: false }));
    const run = await machines.runFromSnapshot(snap.id, { net: true });
    expect(run.record.name).toMatch(/^run-[0-9a-f]{8}$/);
    expect(machines.store.get(run.record.name)).toMatchObject({ ephemeral: true, fromSnapshot: 'src:1', net: true });
    expect(start.mock.calls.map((c) => c[0])).toEqual([run.record.name]);
    await machines.delete(run.record.name, { force: true });

    start.mockRejectedValue(new Error('no VM here'));
    await expect(machines.runFromSnapshot(snap.id)).rejects.toThrow('no VM here');
    expect(machines.store.list().machines.map((r) => r.name)).toEqual(['src']);
    expect((await machines.listSnapshots())[0]!.dependents).toEqual([]);
  });
});

describe('crash safety', () => {
  it('a failure half way through leaves no snapshot and no staging directory', async () => {
    const real = disks.copyDiskSparse;
    let calls = 0;
    jest.spyOn(disks, 'copyDiskSparse').mockImplementation((file, dest, format) => {
      if (++calls === 2) throw new Error('injected: disk full');
      real(file, dest, format);
    });
    await expect(machines.createSnapshot('src')).rejects.toThrow('injected: disk full');
    expect(await machines.listSnapshots()).toEqual([]);
    expect(stagingEntries()).toEqual([]);
    // The tag was not used up.
    jest.restoreAllMocks();
    expect((await machines.createSnapshot('src')).id).toBe('src:1');
  });

  it('a commit that fails before its rename leaves nothing visible', async () => {
    const rename = fs.renameSync;
    jest.spyOn(fs, 'renameSync').mockImplementation((from, to) => {
      if (String(to).endsWith(path.join('src', '1'))) throw new Error('injected: killed before rename');
      rename(from, to);
    });
    await expect(machines.createSnapshot('src')).rejects.toThrow('injected');
    jest.restoreAllMocks();
    expect(await machines.listSnapshots()).toEqual([]);
    expect(stagingEntries()).toEqual([]);
  });

  it("a killed process's staging directory is never listed, and is swept by the next create", async () => {
    const staging = path.join(machines.snapshots.root, '.staging');
    fs.mkdirSync(staging, { recursive: true, mode: 0o700 });
    // pid 2^22+1 is above Linux's pid_max: that process is gone.
    const dead = path.join(staging, `.tmp-${2 ** 22 + 1}-1-abcdef-src.1`);
    fs.mkdirSync(dead);
    fs.writeFileSync(path.join(dead, 'overlay.ext4'), 'partial');
    expect(await machines.listSnapshots()).toEqual([]);
    await machines.createSnapshot('src');
    expect(fs.existsSync(dead)).toBe(false);
    expect(stagingEntries()).toEqual([]);
  });
});

describe('damage', () => {
  it('a truncated disk, an altered small file or an unreadable snapshot.json is refused with one line', async () => {
    const snap = await machines.createSnapshot('src');
    const dir = machines.snapshots.dir(snap.id);
    fs.chmodSync(path.join(dir, 'storage.ext4'), 0o600);
    fs.truncateSync(path.join(dir, 'storage.ext4'), 4096);
    const err = await machines.createMachineFromSnapshot('copy', snap.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SnapshotDamagedError);
    expect((err as Error).message).toBe('snapshot "src:1" is damaged: storage.ext4 is 4096 bytes, expected 1073741824');
    expect((err as Error).message).not.toContain('\n');
    expect(machines.store.exists('copy')).toBe(false);

    const other = await machines.createSnapshot('src');
    const meta = path.join(machines.snapshots.dir(other.id), 'snapshot.json');
    fs.chmodSync(meta, 0o600);
    fs.writeFileSync(meta, '{"schemaVersion": 1, "id": "src:1"');
    await expect(machines.createMachineFromSnapshot('copy', other.id)).rejects.toThrow(
      'snapshot "src:2" is damaged: snapshot.json is unreadable',
    );
    // Listing skips damaged snapshots and reports them apart.
    expect((await machines.listSnapshots()).map((s) => s.id)).toEqual(['src:1']);
    expect(machines.snapshots.readAll().damaged.map((d) => d.id)).toEqual(['src:2']);
    // A damaged snapshot can still be removed.
    await machines.removeSnapshot(other.id);
  });

  it('a listed file moved out of the snapshot is refused', async () => {
    const snap = await machines.createSnapshot('src');
    const meta = path.join(machines.snapshots.dir(snap.id), 'snapshot.json');
    const parsed = JSON.parse(fs.readFileSync(meta, 'utf8')) as { files: Record<string, { size: number }> };
    parsed.files['../../../etc/passwd'] = { size: 1 };
    fs.chmodSync(meta, 0o600);
    fs.writeFileSync(meta, JSON.stringify(parsed));
    await expect(machines.createMachineFromSnapshot('copy', snap.id)).rejects.toThrow('is outside the snapshot');
  });
});
