// Packed snapshots without a VM: a running snapshot made by hand (as the supervisor lays it out)
// is packed as format version 2 and imported back: round trip, deduplication by pack digest,
// tampered sections, a failure injected mid-import, and the refusals of `pack create --from-snapshot`.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConflictError, UsageError } from '@smolvm/common';
import { PackFile, assemblePack } from '@smolvm/pack/local';
import {
  Machines,
  SNAPSHOT_VM_DIR,
  importPackedSnapshot,
  machinePackBoot,
  openPackSection,
  snapshotPackParts,
} from '../src';
import { recordGuestFiles } from '../src/snapshot-pack';
import { testManifest } from '../../pack/test/helpers/manifest';

jest.setTimeout(120_000);
const MIB = 1024 * 1024;
let home: string;
let machines: Machines;
let cacheDir: string;
let guestDir: string;
const memory = Buffer.alloc(64 * MIB);
crypto.randomBytes(4096).copy(memory, 40 * MIB);
const state = crypto.randomBytes(50_000);

function fill(file: string, size: number, marker: string): void {
  const b = Buffer.alloc(size);
  b.write(marker, 4096);
  fs.writeFileSync(file, b, { mode: 0o600 });
}

/** A running snapshot `src:run` laid out as the supervisor writes one (small disks, 64 MiB of RAM). */
async function runningSnapshot(): Promise<string> {
  const src = await machines.create({ name: 'src', storageGiB: 1, overlayGiB: 1, cpus: 1, memoryMiB: 256 });
  const store = machines.snapshots;
  const staging = store.beginStaging('src.run');
  const vm = path.join(staging, SNAPSHOT_VM_DIR);
  fs.mkdirSync(vm, { mode: 0o700 });
  fill(path.join(staging, 'overlay.ext4'), 4 * MIB, 'overlay');
  fill(path.join(staging, 'storage.ext4'), 4 * MIB, 'storage');
  fs.writeFileSync(path.join(vm, 'memory'), memory, { mode: 0o600 });
  fs.writeFileSync(path.join(vm, 'state'), state, { mode: 0o600 });
  fs.writeFileSync(
    path.join(vm, 'qemu.json'),
    JSON.stringify({ qemu: { major: 7, minor: 2, micro: 22 }, package: 'Debian 1:7.2+dfsg-7', memoryMiB: 64 }),
    { mode: 0o600 },
  );
  recordGuestFiles(vm, {
    driver: 'kvm',
    kernel: { path: path.join(guestDir, 'vmlinux') },
    agentImage: { path: path.join(guestDir, 'agent.erofs') },
    image: { path: path.join(guestDir, 'root.erofs'), range: { offset: 4096, size: 8192 } },
  });
  const { runtime: _r, ...source } = src;
  store.commit(staging, {
    id: 'src:run',
    machine: 'src',
    tag: 'run',
    createdAt: new Date().toISOString(),
    running: true,
    source: { ...source, memoryMiB: 64, env: ['A=1'] },
    nic: true,
  });
  return 'src:run';
}

const base = testManifest({
  platform: 'linux/amd64',
  host_platform: 'linux/amd64',
  created: '2026-12-07T12:00:00Z',
  smolvm_version: '0.0.0-test',
  env: ['A=1'],
  memory_mib: 64,
  storage_gib: 1,
  overlay_gib: 1,
});

async function packSnapshot(
  id: string,
  output = path.join(home, 'web.smolmachine'),
  compressKernel = false,
): Promise<string> {
  const parts = snapshotPackParts(machines, id);
  await assemblePack({
    output,
    manifest: { ...base, snapshot: parts.snapshot },
    sections: parts.sections.map((s) => ({
      name: s.name,
      open: () => openPackSection(s),
      ...(compressKernel && s.name === 'kernel' ? { compress: 'gzip' as const } : {}),
    })),
  });
  return output;
}

function flip(file: string, section: 'memory' | 'state' | 'kernel', at: number): void {
  const s = PackFile.open(file).section(section)!;
  const fd = fs.openSync(file, 'r+');
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, s.fileOffset + at);
  fs.writeSync(fd, Buffer.from([b[0]! ^ 0x80]), 0, 1, s.fileOffset + at);
  fs.closeSync(fd);
}

function stagingEntries(): string[] {
  const dir = path.join(machines.snapshots.root, '.staging');
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

beforeEach(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-snappack-'));
  const env = { ...process.env, SMOLVM_HOME: home };
  machines = new Machines({ env });
  cacheDir = path.join(home, 'cache');
  guestDir = path.join(home, 'guest');
  fs.mkdirSync(guestDir);
  fs.writeFileSync(path.join(guestDir, 'vmlinux'), crypto.randomBytes(20_000));
  fs.writeFileSync(path.join(guestDir, 'agent.erofs'), crypto.randomBytes(40_000));
  fs.writeFileSync(path.join(guestDir, 'root.erofs'), crypto.randomBytes(16_384));
});
afterEach(() => fs.rmSync(home, { recursive: true, force: true }));

describe('a running snapshot, packed and imported', () => {
  it('round-trips: the same kernel, agent, root range, disks, RAM and state; sparse and owner-only', async () => {
    const file = await packSnapshot(await runningSnapshot());
    const pack = PackFile.open(file);
    expect(pack.manifest.version).toBe(2);
    expect(pack.manifest.snapshot).toEqual({
      id: 'src:run',
      driver: 'kvm',
      qemu: { major: 7, minor: 2, micro: 22 },
      qemu_package: 'Debian 1:7.2+dfsg-7',
      nic: true,
    });
    const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
    const root = fs.readFileSync(path.join(guestDir, 'root.erofs')).subarray(4096, 4096 + 8192);
    expect(pack.section('rootfs')!.sha256).toBe(sha(root));
    expect(pack.section('agent')!.sha256).toBe(sha(fs.readFileSync(path.join(guestDir, 'agent.erofs'))));

    const id = await importPackedSnapshot(machines, pack, cacheDir);
    expect(id).toBe(`pack-${pack.digest.slice(7, 19)}:run`);
    const meta = machines.snapshots.verify(id);
    expect(meta).toMatchObject({ running: true, nic: true, pack: { digest: pack.digest } });
    expect(meta.source).toMatchObject({ from: file, memoryMiB: 64, cpus: 1, env: ['A=1'], volumes: [] });
    const dir = machines.snapshots.dir(id);
    expect(fs.readFileSync(path.join(dir, 'vm', 'memory')).equals(memory)).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'vm', 'state')).equals(state)).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'storage.ext4')).toString('latin1', 4096, 4103)).toBe('storage');
    // The RAM's zero pages stay holes.
    expect(fs.statSync(path.join(dir, 'vm', 'memory')).blocks * 512).toBeLessThan(4 * MIB);
    for (const f of ['overlay.ext4', 'storage.ext4', 'vm/memory', 'vm/state', 'vm/qemu.json', 'pack.json'])
      expect(fs.statSync(path.join(dir, f)).mode & 0o077).toBe(0);
    expect(stagingEntries()).toEqual([]);

    // A machine from it boots the pack's kernel and agent from the section cache, and resumes the snapshot.
    const copy = await machines.createMachineFromSnapshot('copy', id);
    expect(copy).toMatchObject({ from: file, fromSnapshot: id, memoryMiB: 64 });
    const boot = await machinePackBoot(machines.files('copy').pack, cacheDir, file);
    expect(fs.readFileSync(boot.packed.kernel)).toEqual(fs.readFileSync(path.join(guestDir, 'vmlinux')));
    expect(fs.readFileSync(boot.imageErofs!)).toEqual(root);
  });

  it('with its kernel compressed (version 3, as pack create writes it), boots the same kernel', async () => {
    const file = await packSnapshot(await runningSnapshot(), undefined, true);
    const pack = PackFile.open(file);
    expect(pack.manifest.version).toBe(3);
    const id = await importPackedSnapshot(machines, pack, cacheDir);
    await machines.createMachineFromSnapshot('copy', id);
    const boot = await machinePackBoot(machines.files('copy').pack, cacheDir, file);
    expect(fs.readFileSync(boot.packed.kernel)).toEqual(fs.readFileSync(path.join(guestDir, 'vmlinux')));
  });

  it('is imported once per pack: a second import reuses the snapshot', async () => {
    const file = await packSnapshot(await runningSnapshot());
    const first = await importPackedSnapshot(machines, PackFile.open(file), cacheDir);
    const second = await importPackedSnapshot(machines, PackFile.open(file), cacheDir);
    expect(second).toBe(first);
    expect(machines.snapshots.readAll().snapshots.map((s) => s.id)).toEqual([first, 'src:run']);
  });

  it('refuses a tampered memory, state or kernel section with one line, leaving nothing behind', async () => {
    const file = await packSnapshot(await runningSnapshot());
    for (const [section, at] of [
      ['memory', 40 * MIB + 7],
      ['state', 10],
      ['kernel', 100],
    ] as const) {
      const bad = path.join(home, `bad-${section}.smolmachine`);
      fs.copyFileSync(file, bad);
      flip(bad, section, at);
      const pack = PackFile.open(bad);
      await expect(importPackedSnapshot(machines, pack, cacheDir)).rejects.toThrow(
        new RegExp(`its ${section} section does not match its sha256 \\(damaged or tampered with\\)`),
      );
      expect(fs.existsSync(path.dirname(machines.snapshots.dir(`pack-${pack.digest.slice(7, 19)}:run`)))).toBe(false);
      expect(stagingEntries()).toEqual([]);
    }
  });

  it('leaves no snapshot when the import fails midway, and a later import completes', async () => {
    const pack = PackFile.open(await packSnapshot(await runningSnapshot()));
    await expect(
      importPackedSnapshot(machines, pack, cacheDir, {
        afterSection: (name) => {
          if (name === 'memory') throw new Error('injected failure');
        },
      }),
    ).rejects.toThrow('injected failure');
    expect(machines.snapshots.readAll().snapshots.map((s) => s.id)).toEqual(['src:run']);
    expect(stagingEntries()).toEqual([]);
    const id = await importPackedSnapshot(machines, pack, cacheDir);
    expect(machines.snapshots.verify(id).running).toBe(true);
  });

  it('refuses to pack a stopped snapshot, or one whose agent image changed since', async () => {
    await runningSnapshot();
    const stopped = await machines.createSnapshot('src', { tag: 'cold' });
    expect(() => snapshotPackParts(machines, stopped.id)).toThrow(
      new UsageError('snapshot "src:cold" is of a stopped machine: it has no running state to pack'),
    );
    const agent = path.join(guestDir, 'agent.erofs');
    fs.rmSync(agent);
    fs.writeFileSync(agent, crypto.randomBytes(40_000));
    expect(() => snapshotPackParts(machines, 'src:run')).toThrow(ConflictError);
    expect(() => snapshotPackParts(machines, 'src:run')).toThrow(/the agent image its guest runs from .* has changed/);
  });

  it('refuses to import a pack without a snapshot', async () => {
    const plain = path.join(home, 'plain.smolmachine');
    await assemblePack({
      output: plain,
      manifest: base,
      sections: [
        { name: 'kernel', open: () => fs.createReadStream(path.join(guestDir, 'vmlinux')) },
        { name: 'agent', open: () => fs.createReadStream(path.join(guestDir, 'agent.erofs')) },
      ],
    });
    await expect(importPackedSnapshot(machines, PackFile.open(plain), cacheDir)).rejects.toThrow(
      /holds no running machine to import as a snapshot/,
    );
  });
});
