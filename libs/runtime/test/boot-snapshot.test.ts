// The boot snapshot cache without VMs: keys per shape, staging and publishing.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { SnapshotCapability } from '@smolvm/driver-api';
import type { AgentImage } from '@smolvm/agent-image';
import { markUsed } from '@smolvm/common';
import {
  MACHINE_SLOT_BYTES,
  SnapshotStaging,
  UNUSED_SNAPSHOT_MS,
  findSnapshot,
  snapshotKey,
  type SnapshotKey,
  type SnapshotShape,
} from '../src/boot-snapshot';

/** What an early start that runs its guest checks again (RunRecipe.state). */
const stateSha = (dir: string) =>
  crypto
    .createHash('sha256')
    .update(fs.readFileSync(path.join(dir, 'state')))
    .digest('hex');

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-snap-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const capability = { fingerprint: async () => 'qemu 7.2 tcg microvm max' } as unknown as SnapshotCapability;

function shape(over: Partial<SnapshotShape> = {}): SnapshotShape {
  const kernel = path.join(tmp, 'vmlinux');
  if (!fs.existsSync(kernel)) fs.writeFileSync(kernel, 'kernel');
  const agentImage: AgentImage = {
    path: '/x.erofs',
    key: 'agent-1',
    kernelArgs: ['root=/dev/vda'],
    diskId: 'smolvm-agent',
    built: false,
  };
  return {
    kernel,
    agentImage,
    cpus: 1,
    memoryMiB: 256,
    shares: 0,
    network: false,
    root: 'bare',
    machineDisks: false,
    ...over,
  };
}

describe('snapshot keys', () => {
  it('differ between a bare root and an image slot, and for every other part of the shape', async () => {
    const base = await snapshotKey('kvm', capability, shape());
    const keys = await Promise.all([
      snapshotKey('kvm', capability, shape({ root: 'image-slot' })),
      snapshotKey('kvm', capability, shape({ shares: 1 })),
      snapshotKey('kvm', capability, shape({ network: true })),
      snapshotKey('kvm', capability, shape({ memoryMiB: 512 })),
      snapshotKey('kvm', capability, shape({ root: 'share-root' })),
    ]);
    expect(new Set([base.key, ...keys.map((k) => k.key)]).size).toBe(6);
    expect(keys[4].fields.devices).toBe('blk:agent:ro 9p:root:host-ownership no-net');
    expect(base.fields.devices).toBe('blk:agent:ro root:bare no-net');
    expect(keys[0].fields.devices).toBe('blk:agent:ro blk:image-slot:ro no-net');
    expect((await snapshotKey('kvm', capability, shape())).key).toBe(base.key);
  });

  it('an image in the snapshot (the base of bare VMs) is a shape of its own per image, and a rebuilt image file is another snapshot', async () => {
    const file = path.join(tmp, 'base.erofs');
    fs.writeFileSync(file, 'erofs');
    const withBase = (id: string) => snapshotKey('kvm', capability, shape({ root: { image: { id, file } } }));
    const a = await withBase('sha256:aa');
    expect(a.fields.devices).toBe('blk:agent:ro blk:image:ro root:image:sha256:aa no-net');
    expect(a.key).not.toBe((await snapshotKey('kvm', capability, shape())).key);
    expect(a.key).not.toBe((await snapshotKey('kvm', capability, shape({ root: 'image-slot' }))).key);
    const b = await withBase('sha256:bb');
    expect(b.shapeKey).not.toBe(a.shapeKey);
    expect((await withBase('sha256:aa')).key).toBe(a.key);
    // Same image, its erofs written again: same shape (it replaces the old one), another key.
    fs.rmSync(file);
    fs.writeFileSync(file, 'erofs again');
    const rebuilt = await withBase('sha256:aa');
    expect(rebuilt.shapeKey).toBe(a.shapeKey);
    expect(rebuilt.key).not.toBe(a.key);
  });

  it('give persistent machines shapes of their own: writable disk slots and no saved root, with or without an image slot', async () => {
    const bare = await snapshotKey('kvm', capability, shape());
    const image = await snapshotKey('kvm', capability, shape({ root: 'image-slot' }));
    const machine = await snapshotKey('kvm', capability, shape({ machineDisks: true, shares: 1 }));
    const imageMachine = await snapshotKey(
      'kvm',
      capability,
      shape({ machineDisks: true, root: 'image-slot', shares: 1, network: true }),
    );
    expect(machine.fields.devices).toBe('blk:agent:ro blk:overlay-slot:rw blk:storage-slot:rw 9p:vol0 no-net');
    expect(imageMachine.fields.devices).toBe(
      'blk:agent:ro blk:image-slot:ro blk:overlay-slot:rw blk:storage-slot:rw 9p:vol0 net',
    );
    expect(
      new Set([
        bare.key,
        image.key,
        machine.key,
        imageMachine.key,
        (await snapshotKey('kvm', capability, shape({ machineDisks: true }))).key,
      ]).size,
    ).toBe(5);
  });
});

describe('kernels keyed by content', () => {
  const keyOf = async (kernel: string, root?: string) =>
    (await snapshotKey('kvm', capability, shape({ kernel }), root)).key;

  it('the same bytes at another path (a pack kernel imported again into an emptied cache) key the same snapshot', async () => {
    const root = path.join(tmp, 'vmsnap');
    const a = path.join(tmp, 'a', 'kernel');
    fs.mkdirSync(path.dirname(a));
    fs.writeFileSync(a, 'packed kernel bytes');
    const first = await keyOf(a, root);
    fs.rmSync(a);
    const b = path.join(tmp, 'b');
    fs.writeFileSync(b, 'packed kernel bytes');
    expect(await keyOf(b, root)).toBe(first);
    expect(await keyOf(b)).toBe(first);
  });

  it('a kernel changed in place is hashed again: it never reuses the snapshot of the old bytes', async () => {
    const root = path.join(tmp, 'vmsnap');
    const k = path.join(tmp, 'kernel');
    fs.writeFileSync(k, 'kernel v1');
    const v1 = await keyOf(k, root);
    expect(await keyOf(k, root)).toBe(v1); // remembered
    // Same size, same mtime put back: the ctime still changes, so does the identity.
    const { mtime, atime } = fs.statSync(k);
    fs.writeFileSync(k, 'kernel v2');
    fs.utimesSync(k, atime, mtime);
    const v2 = await keyOf(k, root);
    expect(v2).not.toBe(v1);
    expect(v2).toBe(await keyOf(k));
  });

  it('remembers digests owner-only, and ignores a memo another user could have written', async () => {
    const root = path.join(tmp, 'vmsnap');
    const k = path.join(tmp, 'kernel');
    fs.writeFileSync(k, 'kernel bytes');
    const honest = await keyOf(k, root);
    const dir = path.join(tmp, 'kernel-digests');
    const [memo] = fs.readdirSync(dir);
    expect(fs.statSync(path.join(dir, memo)).mode & 0o777).toBe(0o600);
    const [identity] = fs.readFileSync(path.join(dir, memo), 'utf8').split('\n');
    // The memo is what keys the next start (the kernel is not read again): an own one is believed...
    fs.writeFileSync(path.join(dir, memo), `${identity}\n${'0'.repeat(64)}`);
    expect(await keyOf(k, root)).not.toBe(honest);
    // ...one others may write is not.
    fs.writeFileSync(path.join(dir, memo), `${identity}\n${'0'.repeat(64)}`);
    fs.chmodSync(path.join(dir, memo), 0o666);
    expect(await keyOf(k, root)).toBe(honest);
    // Nor a memo for another identity (it names the file it was made for).
    fs.writeFileSync(path.join(dir, memo), `${identity} other\n${'0'.repeat(64)}`, { mode: 0o600 });
    fs.chmodSync(path.join(dir, memo), 0o600);
    expect(await keyOf(k, root)).toBe(honest);
  });
});

describe('staging', () => {
  it('a bare snapshot has no image slot; an image-slot one has a sparse placeholder; both publish owner-only', async () => {
    const root = path.join(tmp, 'vmsnap');
    for (const [withSlot, k] of [
      [false, await snapshotKey('kvm', capability, shape())],
      [true, await snapshotKey('kvm', capability, shape({ root: 'image-slot' }))],
    ] as const) {
      const staging = new SnapshotStaging(root, { imageSlot: withSlot });
      expect(staging.imageSlot !== undefined).toBe(withSlot);
      if (staging.imageSlot) expect(fs.statSync(staging.imageSlot).blocks).toBe(0);
      fs.writeFileSync(path.join(staging.dir, 'state'), 'device state');
      fs.writeFileSync(path.join(staging.dir, 'memory'), 'ram');
      expect(staging.commit(k, 42)).toBe(true);
      const found = findSnapshot(root, k);
      expect(found).toEqual({
        dir: path.join(root, k.key),
        agentPid: 42,
        stateSha256: stateSha(path.join(root, k.key)),
      });
      const files = fs.readdirSync(path.join(root, k.key)).sort();
      expect(files).toEqual(withSlot ? ['memory', 'meta.json', 'slot.img', 'state'] : ['memory', 'meta.json', 'state']);
      for (const f of files) expect(fs.statSync(path.join(root, k.key, f)).mode & 0o777).toBe(0o600);
    }
    // Both shapes live side by side: publishing one does not evict the other.
    expect(fs.readdirSync(root).filter((n) => !n.startsWith('.'))).toHaveLength(2);
  });

  it('a machine shape gets writable disk placeholders, sparse and owner-only, published with the snapshot', async () => {
    const root = path.join(tmp, 'vmsnap');
    const staging = new SnapshotStaging(root, { imageSlot: true, machineDisks: true });
    const slots = staging.machineSlots;
    expect(slots).toBeDefined();
    for (const file of [slots?.overlayDisk, slots?.storageDisk] as string[]) {
      const st = fs.statSync(file);
      expect(st.size).toBe(MACHINE_SLOT_BYTES);
      expect(st.blocks).toBe(0);
      expect(st.mode & 0o777).toBe(0o600);
    }
    fs.writeFileSync(path.join(staging.dir, 'state'), 'device state');
    const k = await snapshotKey('kvm', capability, shape({ machineDisks: true, root: 'image-slot' }));
    expect(staging.commit(k, 7)).toBe(true);
    expect(fs.readdirSync(path.join(root, k.key)).sort()).toEqual([
      'meta.json',
      'overlay-slot.img',
      'slot.img',
      'state',
      'storage-slot.img',
    ]);
    expect(findSnapshot(root, k)).toEqual({
      dir: path.join(root, k.key),
      agentPid: 7,
      stateSha256: stateSha(path.join(root, k.key)),
    });
  });
});

function publish(root: string, k: SnapshotKey): string {
  const staging = new SnapshotStaging(root, { imageSlot: false });
  fs.writeFileSync(path.join(staging.dir, 'state'), 'device state');
  staging.commit(k, 1);
  return path.join(root, k.key);
}

describe('eviction', () => {
  it('publishing a snapshot drops those of another format and those no restore used for a day, keeps recent ones', async () => {
    const root = path.join(tmp, 'vmsnap');
    const dayAgo = new Date(Date.now() - UNUSED_SNAPSHOT_MS - 60_000);
    const stale = publish(root, await snapshotKey('kvm', capability, shape({ memoryMiB: 300 })));
    const used = publish(root, await snapshotKey('kvm', capability, shape({ memoryMiB: 301 })));
    const recent = publish(root, await snapshotKey('kvm', capability, shape({ memoryMiB: 302 })));
    for (const dir of [stale, used]) fs.utimesSync(dir, dayAgo, dayAgo);
    markUsed(used);
    const oldFormat = path.join(root, 'f'.repeat(32));
    fs.mkdirSync(oldFormat);
    fs.writeFileSync(path.join(oldFormat, 'meta.json'), JSON.stringify({ format: 1 }));
    const fresh = publish(root, await snapshotKey('kvm', capability, shape({ memoryMiB: 303 })));
    expect(fs.readdirSync(root).sort()).toEqual([fresh, recent, used].map((d) => path.basename(d)).sort());
  });
});

// Issue 14, item 7: a snapshot is a running guest (the agent, its memory): one another user could
// have written is never restored.
describe('a snapshot another user could have written', () => {
  it('is not used, and the note says why; an own one in a private cache is', async () => {
    const root = path.join(tmp, 'vmsnap');
    const k = await snapshotKey('kvm', capability, shape({ memoryMiB: 310 }));
    const dir = publish(root, k);
    expect(findSnapshot(root, k)).toEqual({ dir, agentPid: 1, stateSha256: stateSha(dir) });
    fs.chmodSync(path.join(dir, 'state'), 0o666);
    expect(findSnapshot(root, k)).toEqual({
      note: `the boot snapshot ${dir} is not used: refusing ${path.join(dir, 'state')}: it is writable by its group and other users (mode 666)`,
    });
    fs.chmodSync(path.join(dir, 'state'), 0o600);
    fs.chmodSync(root, 0o777);
    expect(findSnapshot(root, k)).toEqual({
      note: expect.stringMatching(/is not used: refusing .*vmsnap: it is writable by its group and other users/),
    });
    fs.chmodSync(root, 0o700);
    fs.renameSync(path.join(dir, 'state'), path.join(tmp, 'state'));
    fs.symlinkSync(path.join(tmp, 'state'), path.join(dir, 'state'));
    expect(findSnapshot(root, k)).toEqual({ note: expect.stringMatching(/state: it is a symbolic link$/) });
    // Left where it is: not this process's to remove.
    expect(fs.existsSync(dir)).toBe(true);
  });
});
