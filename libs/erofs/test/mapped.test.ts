// Chunk-based files whose data lives on extra devices (the erofs device table): round trips through our
// reader and through erofs-utils (fsck.erofs --device, dump.erofs), the on-disk fields, and every refusal.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '@smolvm/common';
import {
  DEFAULT_CHUNK_BITS,
  ErofsBuilder,
  openErofs,
  type ErofsBuildOptions,
  type ErofsSuperblock,
  type MappedFileSpec,
} from '../src';
import { fsck, sha256, tempDir } from './helpers/tools';

const BLOCK = 4096;

/** Deterministic pseudo-random bytes. */
function bytes(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** What the file must read as: the device's bytes with the overridden chunks replaced (zero-padded). */
function expected(
  device: Buffer,
  size: number,
  chunkBits: number,
  overrides: MappedFileSpec['overrides'] = [],
): Buffer {
  const out = Buffer.alloc(size);
  device.copy(out, 0, 0, Math.min(size, device.length));
  const c = 2 ** chunkBits;
  for (const o of overrides) {
    const end = Math.min(size, (o.chunk + 1) * c);
    out.fill(0, o.chunk * c, end);
    Buffer.from(o.data).copy(out, o.chunk * c);
  }
  return out;
}

describe('mapped files on extra devices', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('erofs-mapped-');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('round trip: indexes point into the device, overridden chunks into the image', async () => {
    const C = 2 ** 14;
    // Not a multiple of the chunk size nor of 4 KiB: the tail chunk runs past the last whole block.
    const devBytes = bytes(5 * C + 3 * BLOCK + 1234, 7);
    const devPath = path.join(dir, 'stub.bin');
    fs.writeFileSync(devPath, devBytes);
    const blocks = Math.floor(devBytes.length / BLOCK);
    const fuse = Buffer.from(devBytes.subarray(1 * C, 2 * C));
    fuse.write(':1', 100, 'latin1');
    const overrides = [
      { chunk: 5, data: devBytes.subarray(5 * C) }, // the tail: 3 blocks + 1234 bytes
      { chunk: 1, data: fuse },
      { chunk: 3, data: Buffer.from('short, rest is zeros') },
    ];
    const img = path.join(dir, 'img.erofs');
    const b = ErofsBuilder.create(img, {
      buildTime: 1_000,
      uuid: Buffer.alloc(16, 3),
      devices: [{ tag: 'smolvm-stub', blocks }],
    });
    await b.writeFile('before', bytes(10_000, 1), { mtime: 1_000 });
    b.writeMappedFile(
      'bin/node',
      { size: devBytes.length, device: 1, chunkBits: 14, overrides },
      // A 20-byte xattr body: the index table needs 4 bytes of padding to stay 8-byte aligned.
      { mode: 0o755, mtime: 1_000, xattrs: { 'user.a': Buffer.from('123') } },
    );
    b.link('bin/node-link', 'bin/node');
    await b.writeFile('after', bytes(5000, 2), { mtime: 1_000 });
    const stats = await b.finish();
    expect(stats.files).toBe(3);
    expect(stats.hardLinks).toBe(1);
    expect(stats.fileBytes).toBe(devBytes.length + 15_000);
    expect(stats.deadBytes).toBe(0);
    // Of the mapped file, the image holds only the three overridden chunks (4 blocks each, zero-padded):
    // superblock + 2 + 12 + 1 data blocks + one metadata block (tails and directories inline).
    expect(stats.imageBytes).toBe(17 * BLOCK);

    const want = expected(devBytes, devBytes.length, 14, overrides);
    const r = openErofs(img, { devices: [devPath] });
    try {
      const sb = r.superblock;
      expect(sb.checksumOk).toBe(true);
      expect(sb.featureIncompat).toBe(0x4 | 0x8);
      expect(sb.devices).toEqual([{ tag: 'smolvm-stub', blocks, mappedBlkAddr: 0 }]);
      const e = r.lookup('/bin/node');
      expect(e).toMatchObject({ type: 'file', mode: 0o755, size: devBytes.length, layout: 4, nlink: 2 });
      expect(e?.xattrs.get('user.a')).toEqual(Buffer.from('123'));
      expect(sha256(r.readFile('/bin/node'))).toBe(sha256(want));
      expect(r.readFile('/bin/node-link').equals(want)).toBe(true);
      expect(r.readFile('/before').equals(bytes(10_000, 1))).toBe(true);
      expect(r.readFile('/after').equals(bytes(5000, 2))).toBe(true);
      const map = r.chunkMap('/bin/node');
      expect(map?.chunkBits).toBe(14);
      expect(map?.format).toBe('indexes');
      expect(map?.chunks.map((c) => c?.device)).toEqual([1, 0, 1, 0, 1, 0]);
      for (const i of [0, 2, 4]) expect(map?.chunks[i]?.blkaddr).toBe((i * C) / BLOCK);
      expect(r.chunkMap('/before')).toBeUndefined();
    } finally {
      r.close();
    }

    // erofs-utils reads it independently: fsck walks every chunk, --extract gives the bytes back.
    fsck(img, undefined, [devPath]);
    const out = path.join(dir, 'x');
    fsck(img, out, [devPath]);
    expect(sha256(fs.readFileSync(path.join(out, 'bin/node')))).toBe(sha256(want));
    expect(fs.statSync(path.join(out, 'bin/node')).mode & 0o777).toBe(0o755);
    const sbDump = execFileSync('dump.erofs', [`--device=${devPath}`, '-s', img], { encoding: 'utf8' });
    expect(sbDump).toMatch(/Filesystem features:.*chunked_file.*device_table/);
    const extents = execFileSync('dump.erofs', [`--device=${devPath}`, '-e', '--path=/bin/node', img], {
      encoding: 'utf8',
    });
    expect(extents).toMatch(/Layout: 4/);
    // Extent lines: "  N:  logical..end | len :  physical..end | len  # device 1" (no marker: the image).
    const rows = [...extents.matchAll(/^\s*\d+:\s+(\d+)\.\.\s*\d+ \|\s+\d+ :\s+(\d+)\.\..*?(# device \d+)?$/gm)];
    expect(rows.map((m) => m[3] ?? 'image')).toEqual([
      '# device 1',
      'image',
      '# device 1',
      'image',
      '# device 1',
      'image',
    ]);
    for (const m of rows.filter((row) => row[3])) expect(m[2]).toBe(m[1]); // device offset = file offset
  });

  test('the default chunk size, a file shorter than its device, an empty file and two devices', async () => {
    const C = 2 ** DEFAULT_CHUNK_BITS;
    const dev1 = bytes(3 * C, 11);
    const dev2 = bytes(2 * C + BLOCK, 12);
    const p1 = path.join(dir, 'd1');
    const p2 = path.join(dir, 'd2');
    fs.writeFileSync(p1, dev1);
    fs.writeFileSync(p2, dev2);
    const img = path.join(dir, 'img.erofs');
    const b = ErofsBuilder.create(img, {
      devices: [
        { tag: 'one', blocks: dev1.length / BLOCK },
        { tag: 'two', blocks: dev2.length / BLOCK },
      ],
    });
    b.writeMappedFile('whole', { size: dev1.length, device: 1 });
    b.writeMappedFile('part', { size: C + 5, device: 2 }, { uid: 70_000 }); // extended inode
    b.writeMappedFile('empty', { size: 0, device: 2 });
    await b.finish();
    const r = openErofs(img, { devices: [p1, p2] });
    try {
      expect(r.readFile('/whole').equals(dev1)).toBe(true);
      expect(r.readFile('/part').equals(dev2.subarray(0, C + 5))).toBe(true);
      expect(r.lookup('/part')?.extended).toBe(true);
      expect(r.readFile('/empty').length).toBe(0);
      expect(r.chunkMap('/part')?.chunks).toEqual([
        { device: 2, blkaddr: 0 },
        { device: 2, blkaddr: C / BLOCK },
      ]);
      expect(r.superblock.devices.map((d) => d.tag)).toEqual(['one', 'two']);
    } finally {
      r.close();
    }
    fsck(img, undefined, [p1, p2]);
  });

  test('a replaced mapped file leaves its overridden chunks as dead space', async () => {
    const b = ErofsBuilder.create(path.join(dir, 'img.erofs'), { devices: [{ tag: 'd', blocks: 1 }] });
    b.writeMappedFile('f', { size: 5000, device: 1, chunkBits: 12, overrides: [{ chunk: 1, data: Buffer.from('x') }] });
    await b.writeFile('f', 'replaced');
    const stats = await b.finish();
    expect(stats.deadBytes).toBe(BLOCK);
  });

  test('without devices or mapped files the image is byte-identical to before', async () => {
    const build = async (name: string, opts: ErofsBuildOptions): Promise<Buffer> => {
      const p = path.join(dir, name);
      const b = ErofsBuilder.create(p, { buildTime: 5, uuid: Buffer.alloc(16, 1), ...opts });
      await b.writeFile('a/b', 'x'.repeat(5000));
      b.symlink('l', 'a/b');
      await b.finish();
      return fs.readFileSync(p);
    };
    const plain = await build('plain', {});
    expect(plain.readUInt32LE(1024 + 80)).toBe(0); // feature_incompat
    expect(sha256(await build('empty-devices', { devices: [] }))).toBe(sha256(plain));
    // A device table alone sets DEVICE_TABLE but not CHUNKED_FILE.
    await build('dev', { devices: [{ tag: 't', blocks: 8 }] });
    const withDev = superblockOf(path.join(dir, 'dev'));
    expect(withDev.featureIncompat).toBe(0x8);
    expect(withDev.devices).toEqual([{ tag: 't', blocks: 8, mappedBlkAddr: 0 }]);
  });

  test('the reader needs the device files for chunks that live there, and checks them', async () => {
    const devPath = path.join(dir, 'dev');
    fs.writeFileSync(devPath, bytes(4 * BLOCK, 3));
    const img = path.join(dir, 'img.erofs');
    const b = ErofsBuilder.create(img, { devices: [{ tag: 'd', blocks: 4 }] });
    b.writeMappedFile('f', { size: 4 * BLOCK, device: 1, chunkBits: 12 });
    b.writeMappedFile('own', { size: 10, device: 1, overrides: [{ chunk: 0, data: Buffer.from('0123456789') }] });
    await b.finish();

    expect(() => openErofs(img, { devices: [devPath, devPath] })).toThrow(/has 1 extra devices, 2 were given/);
    const noDev = openErofs(img);
    try {
      expect(noDev.readFile('/own').toString()).toBe('0123456789'); // all in the image
      expect(() => noDev.readFile('/f')).toThrow(/chunk 0 is on device 1, which was not given/);
    } finally {
      noDev.close();
    }
    fs.truncateSync(devPath, 3 * BLOCK + 10);
    const short = openErofs(img, { devices: [devPath] });
    try {
      expect(() => short.readFile('/f')).toThrow(/chunk 3: 4096 bytes at 12288 are outside/);
    } finally {
      short.close();
    }
  });

  test('a chunk index of NULL_ADDR is a hole: the reader gives zeros', async () => {
    const devPath = path.join(dir, 'dev');
    fs.writeFileSync(devPath, bytes(3 * BLOCK, 9));
    const img = path.join(dir, 'img.erofs');
    const b = ErofsBuilder.create(img, { devices: [{ tag: 'd', blocks: 3 }] });
    b.writeMappedFile('f', { size: 3 * BLOCK, device: 1, chunkBits: 12 });
    await b.finish();
    let r = openErofs(img);
    const nid = r.lookup('/f')?.nid ?? 0;
    const meta = r.superblock.metaBlkAddr;
    r.close();
    // Compact inode, no xattrs: the indexes follow the 32-byte inode; chunk 1's blkaddr is at +4.
    const image = fs.readFileSync(img);
    image.writeUInt32LE(0xffffffff, meta * BLOCK + nid * 32 + 32 + 8 + 4);
    fs.writeFileSync(img, image);
    r = openErofs(img, { devices: [devPath] });
    try {
      expect(r.chunkMap('/f')?.chunks[1]).toBeNull();
      const want = bytes(3 * BLOCK, 9);
      want.fill(0, BLOCK, 2 * BLOCK);
      expect(r.readFile('/f').equals(want)).toBe(true);
    } finally {
      r.close();
    }
  });

  test('reads chunk-based files mkfs.erofs writes (block map, no devices)', () => {
    const src = path.join(dir, 'src');
    fs.mkdirSync(src);
    const data = bytes(70_000, 5);
    fs.writeFileSync(path.join(src, 'f'), data);
    const img = path.join(dir, 'mkfs.erofs');
    execFileSync('mkfs.erofs', ['--quiet', '--chunksize=8192', img, src], { stdio: 'ignore' });
    const r = openErofs(img);
    try {
      expect(r.chunkMap('/f')).toMatchObject({ chunkBits: 13, format: 'blockmap' });
      expect(r.readFile('/f').equals(data)).toBe(true);
    } finally {
      r.close();
    }
  });

  describe('refusals', () => {
    const refuse = (fn: () => unknown, message: RegExp): void => {
      let err: unknown;
      try {
        fn();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UsageError);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toContain('\n');
    };

    test.each([
      [{ devices: Array.from({ length: 24 }, () => ({ tag: 't', blocks: 1 })) }, /at most 23 extra devices, not 24/],
      [{ devices: [{ tag: '', blocks: 1 }] }, /device 1: tag must be 1 to 64 printable ASCII/],
      [
        {
          devices: [
            { tag: 'x', blocks: 1 },
            { tag: 'y'.repeat(65), blocks: 1 },
          ],
        },
        /device 2: tag must be 1 to 64/,
      ],
      [{ devices: [{ tag: 'caf\u00e9', blocks: 1 }] }, /tag must be 1 to 64 printable ASCII/],
      [{ devices: [{ tag: 'a\0b', blocks: 1 }] }, /tag must be 1 to 64 printable ASCII/],
      [{ devices: [{ tag: 't', blocks: 0 }] }, /device 1: blocks 0 must be a whole number from 1 to 4294967295/],
      [{ devices: [{ tag: 't', blocks: 1.5 }] }, /blocks 1.5 must be a whole number/],
      [{ devices: [{ tag: 't', blocks: 2 ** 32 }] }, /blocks 4294967296 must be a whole number/],
    ] as Array<[ErofsBuildOptions, RegExp]>)('build options %#', (opts, message) => {
      const out = path.join(dir, 'img.erofs');
      refuse(() => ErofsBuilder.create(out, opts), message);
      expect(fs.readdirSync(dir)).toEqual([]);
    });

    test('a 64-byte tag (no NUL) is accepted and read back whole', async () => {
      const tag = 'T'.repeat(64);
      const img = path.join(dir, 'img.erofs');
      await ErofsBuilder.create(img, { devices: [{ tag, blocks: 1 }] }).finish();
      expect(superblockOf(img).devices[0].tag).toBe(tag);
    });

    const C = 2 ** 12;
    test.each([
      [{ size: 10, device: 0 }, /erofs entry 'f': unknown device 0: this image's extra devices are 1\.\.1/],
      [{ size: 10, device: 2 }, /unknown device 2: this image's extra devices are 1\.\.1/],
      [{ size: 10, device: 1.5 }, /unknown device 1.5/],
      [{ size: -1, device: 1 }, /size -1 must be a whole number >= 0/],
      [{ size: 0.5, device: 1 }, /size 0.5 must be a whole number >= 0/],
      [{ size: 10, device: 1, chunkBits: 11 }, /chunkBits 11 must be a whole number from 12 to 43/],
      [{ size: 10, device: 1, chunkBits: 44 }, /chunkBits 44 must be/],
      [{ size: 10, device: 1, chunkBits: 12.5 }, /chunkBits 12.5 must be/],
      [{ size: 2 ** 24 * C + 1, device: 1, chunkBits: 12 }, /16777217 chunks is more than 16777216: use a larger/],
      [
        { size: 3 * C, device: 1, chunkBits: 12, overrides: [{ chunk: 3, data: Buffer.alloc(1) }] },
        /override chunk 3 is out of range: the file has 3 chunks/,
      ],
      [
        { size: 3 * C, device: 1, chunkBits: 12, overrides: [{ chunk: -1, data: Buffer.alloc(1) }] },
        /override chunk -1 is out of range/,
      ],
      [{ size: 0, device: 1, overrides: [{ chunk: 0, data: Buffer.alloc(0) }] }, /the file has 0 chunks/],
      [
        {
          size: 3 * C,
          device: 1,
          chunkBits: 12,
          overrides: [
            { chunk: 1, data: Buffer.alloc(1) },
            { chunk: 1, data: Buffer.alloc(2) },
          ],
        },
        /chunk 1 is overridden twice/,
      ],
      [
        { size: 3 * C, device: 1, chunkBits: 12, overrides: [{ chunk: 0, data: Buffer.alloc(C + 1) }] },
        /override data for chunk 0 is 4097 bytes, longer than the chunk's 4096/,
      ],
      [
        { size: 2 * C + 10, device: 1, chunkBits: 12, overrides: [{ chunk: 2, data: Buffer.alloc(11) }] },
        /override data for chunk 2 is 11 bytes, longer than the chunk's 10/,
      ],
      // The device has 3 blocks: a 4th block is past its end unless overridden.
      [
        { size: 3 * C + 1, device: 1, chunkBits: 12 },
        /chunk 3 \(blocks 3\.\.3\) reaches past the end of device 1 \(3 blocks\): override it/,
      ],
      [{ size: 4 * C, device: 1, chunkBits: 13 }, /chunk 1 \(blocks 2\.\.3\) reaches past/],
    ] as Array<[MappedFileSpec, RegExp]>)('writeMappedFile %#', async (spec, message) => {
      const b = ErofsBuilder.create(path.join(dir, 'img.erofs'), { devices: [{ tag: 'd', blocks: 3 }] });
      try {
        refuse(() => b.writeMappedFile('f', spec), message);
      } finally {
        await b.abort();
      }
    });

    test('writeMappedFile without any devices, during a writeFile and after finish', async () => {
      const b = ErofsBuilder.create(path.join(dir, 'img.erofs'));
      refuse(
        () => b.writeMappedFile('f', { size: 1, device: 1 }),
        /unknown device 1: this image's extra devices are none/,
      );
      const slow = (async function* () {
        await new Promise((r) => setTimeout(r, 20));
        yield Buffer.from('x');
      })();
      const pending = b.writeFile('g', slow);
      refuse(() => b.writeMappedFile('f', { size: 1, device: 1 }), /await the previous writeFile/);
      await pending;
      await b.finish();
      refuse(() => b.writeMappedFile('f', { size: 1, device: 1 }), /already finished/);
    });
  });
});

function superblockOf(img: string): ErofsSuperblock {
  const r = openErofs(img);
  try {
    return r.superblock;
  } finally {
    r.close();
  }
}
