// The Linux erofs driver reading chunk-based files from extra devices, the way the guest will: every
// device is a read-only loop device, named with `-o device=`, and the image is mounted from a loop
// device too. Skipped where this machine cannot loop-mount erofs or the kernel predates 5.16.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_CHUNK_BITS, ErofsBuilder } from '../src';
import { canMount, kernelHasErofsDevices } from './helpers/mount';
import { sha256, tempDir } from './helpers/tools';

const maybe = canMount() && kernelHasErofsDevices() ? test : test.skip;
const BLOCK = 4096;
const C = 2 ** DEFAULT_CHUNK_BITS;

function losetup(file: string): string {
  // stderr piped: losetup warns about files that end mid-sector (the end is what overrides are for).
  return execFileSync('losetup', ['-r', '--find', '--show', file], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 20000,
  }).trim();
}

/** Attaches the devices and the image to loop devices, mounts, runs `fn`, and always tears it all down. */
async function withMount(
  img: string,
  devices: readonly string[],
  mnt: string,
  fn: () => void | Promise<void>,
): Promise<void> {
  const loops: string[] = [];
  let mounted = false;
  try {
    for (const d of devices) loops.push(losetup(d));
    const opts = ['ro', ...loops.map((l) => `device=${l}`)].join(',');
    loops.push(losetup(img));
    execFileSync('mount', ['-t', 'erofs', '-o', opts, loops[loops.length - 1], mnt], { timeout: 20000 });
    mounted = true;
    await fn();
  } finally {
    if (mounted) execFileSync('umount', [mnt], { timeout: 20000 });
    for (const l of loops.reverse()) spawnSync('losetup', ['-d', l], { timeout: 20000 });
  }
}

function pattern(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n + 3);
  for (let i = 0; i < n; i += 4) out.writeUInt32LE((Math.imul(i + 1, 2654435761) ^ seed) >>> 0, i);
  return out.subarray(0, n);
}

describe('kernel mount of mapped files', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('erofs-mapped-mount-');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  maybe('files read through the device table match the device with its overridden chunks', async () => {
    // Device 1 is neither a multiple of the chunk size nor of 4 KiB, so its tail chunk must be overridden.
    const stubSize = 3 * C + 5 * BLOCK + 777;
    const stub = pattern(stubSize, 0x5ea);
    const stubPath = path.join(dir, 'stub');
    fs.writeFileSync(stubPath, stub);
    const other = pattern(6 * BLOCK, 0x2);
    const otherPath = path.join(dir, 'other');
    fs.writeFileSync(otherPath, other);

    const fuseAt = C + 1000; // stands in for the SEA fuse: one byte that must differ in the guest
    const chunk1 = Buffer.from(stub.subarray(C, 2 * C));
    chunk1.write(':0', fuseAt - C - 1, 'latin1');
    const img = path.join(dir, 'img.erofs');
    const b = ErofsBuilder.create(img, {
      devices: [
        { tag: 'stub', blocks: Math.floor(stubSize / BLOCK) },
        { tag: 'other', blocks: other.length / BLOCK },
      ],
    });
    await b.writeFile('etc/plain', 'plain file in the image\n');
    b.writeMappedFile(
      'bin/node',
      {
        size: stubSize,
        device: 1,
        overrides: [
          { chunk: 3, data: stub.subarray(3 * C) },
          { chunk: 1, data: chunk1 },
        ],
      },
      // A 20-byte xattr body: the kernel finds the indexes only if they are padded to 8-byte alignment.
      { mode: 0o755, xattrs: { 'user.a': Buffer.from('123') } },
    );
    b.link('bin/node2', 'bin/node');
    // 4 KiB chunks on device 2; chunk 2 stored in the image, short and zero-padded.
    b.writeMappedFile(
      'lib/data',
      { size: 5 * BLOCK + 10, device: 2, chunkBits: 12, overrides: [{ chunk: 2, data: Buffer.from('patched') }] },
      { mode: 0o640, uid: 1000, gid: 1000 },
    );
    await b.finish();

    const wantNode = Buffer.from(stub);
    wantNode.write(':0', fuseAt - 1, 'latin1');
    const wantData = Buffer.from(other.subarray(0, 5 * BLOCK + 10));
    wantData.fill(0, 2 * BLOCK, 3 * BLOCK);
    wantData.write('patched', 2 * BLOCK, 'latin1');

    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    await withMount(img, [stubPath, otherPath], mnt, () => {
      const node = path.join(mnt, 'bin/node');
      const st = fs.statSync(node);
      expect(st.size).toBe(stubSize);
      expect(st.mode & 0o777).toBe(0o755);
      expect(st.nlink).toBe(2);
      expect(fs.statSync(path.join(mnt, 'bin/node2')).ino).toBe(st.ino);
      expect(sha256(fs.readFileSync(node))).toBe(sha256(wantNode));
      // A read across the boundary of a device chunk and an image chunk.
      const fd = fs.openSync(node, 'r');
      try {
        const buf = Buffer.alloc(2000);
        expect(fs.readSync(fd, buf, 0, 2000, 2 * C - 1000)).toBe(2000);
        expect(buf.equals(wantNode.subarray(2 * C - 1000, 2 * C + 1000))).toBe(true);
        expect(fs.readSync(fd, buf, 0, 2, fuseAt - 1)).toBe(2);
        expect(buf.toString('latin1', 0, 2)).toBe(':0');
      } finally {
        fs.closeSync(fd);
      }
      const data = fs.statSync(path.join(mnt, 'lib/data'));
      expect([data.size, data.mode & 0o777, data.uid, data.gid]).toEqual([5 * BLOCK + 10, 0o640, 1000, 1000]);
      expect(sha256(fs.readFileSync(path.join(mnt, 'lib/data')))).toBe(sha256(wantData));
      expect(fs.readFileSync(path.join(mnt, 'etc/plain'), 'utf8')).toBe('plain file in the image\n');
    });
  });

  maybe('a real executable runs from a device it is mapped onto (this Node)', async () => {
    const exe = fs.realpathSync(process.execPath);
    const size = fs.statSync(exe).size;
    const blocks = Math.floor(size / BLOCK);
    const last = Math.ceil(size / C) - 1;
    const overrides: Array<{ chunk: number; data: Buffer }> = [];
    if (size % BLOCK !== 0) {
      // The tail past the last whole block: the only bytes of the executable the image holds.
      const tail = Buffer.alloc(size - last * C);
      const fd = fs.openSync(exe, 'r');
      try {
        fs.readSync(fd, tail, 0, tail.length, last * C);
      } finally {
        fs.closeSync(fd);
      }
      overrides.push({ chunk: last, data: tail });
    }
    const img = path.join(dir, 'node.erofs');
    const b = ErofsBuilder.create(img, { devices: [{ tag: 'node', blocks }] });
    b.writeMappedFile('bin/node', { size, device: 1, overrides }, { mode: 0o755 });
    const stats = await b.finish();
    // ~8 bytes of index per chunk plus at most one chunk of data, not a copy of the executable.
    expect(stats.imageBytes).toBeLessThan(C + Math.ceil(size / C) * 8 + 8 * BLOCK);

    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    await withMount(img, [exe], mnt, () => {
      const node = path.join(mnt, 'bin/node');
      expect(fs.statSync(node).size).toBe(size);
      expect(sha256(fs.readFileSync(node))).toBe(sha256(fs.readFileSync(exe)));
      const out = execFileSync(node, ['-e', 'process.stdout.write(String(6 * 7))'], {
        encoding: 'utf8',
        timeout: 60000,
      });
      expect(out).toBe('42');
    });
  });
});
