import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { SmolvmError } from '@smolvm/common';
import { ErofsBuilder, openErofs } from '../src';
import { BLOCK_SIZE, DIRENT_SIZE, crc32c, decodeDev, encodeDev, planDirBlocks, splitXattrName } from '../src/format';
import { tempDir } from './helpers/tools';

describe('format primitives', () => {
  test('crc32c matches the standard check value', () => {
    // CRC-32C("123456789") = 0xE3069283 with the final inversion; erofs stores the raw register.
    expect((crc32c(0xffffffff, Buffer.from('123456789')) ^ 0xffffffff) >>> 0).toBe(0xe3069283);
  });

  test('device numbers use the kernel new_encode_dev layout', () => {
    expect(encodeDev(1, 3)).toBe(0x103);
    expect(encodeDev(8, 0x12345)).toBe((0x12345 & 0xff) | (8 << 8) | ((0x12345 & ~0xff) << 12));
    for (const [maj, min] of [
      [0, 0],
      [4095, 1048575],
      [259, 70000],
      [1, 256],
    ])
      expect(decodeDev(encodeDev(maj, min))).toEqual({ major: maj, minor: min });
  });

  test('directory blocks are packed greedily and never split an entry', () => {
    const names = Array.from({ length: 1000 }, (_, i) => 10 + (i % 200));
    const { starts, size } = planDirBlocks(names);
    for (let b = 0; b < starts.length; b++) {
      const end = b + 1 < starts.length ? starts[b + 1] : names.length;
      const used = names.slice(starts[b], end).reduce((s, n) => s + n + DIRENT_SIZE, 0);
      expect(used).toBeLessThanOrEqual(BLOCK_SIZE);
      if (b + 1 < starts.length) expect(used + DIRENT_SIZE + names[end]).toBeGreaterThan(BLOCK_SIZE);
      else expect(size).toBe(b * BLOCK_SIZE + used);
    }
  });

  test('xattr names map to erofs prefix indexes', () => {
    expect(splitXattrName('security.capability')).toEqual({ index: 6, suffix: Buffer.from('capability') });
    expect(splitXattrName('system.posix_acl_access')).toEqual({ index: 2, suffix: Buffer.alloc(0) });
    expect(splitXattrName('user.')).toBeUndefined();
    expect(splitXattrName('system.other')).toBeUndefined();
  });
});

describe('reader', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('reads images written by mkfs.erofs and agrees on their superblock checksum', () => {
    const src = path.join(dir, 'src');
    fs.mkdirSync(path.join(src, 'd'), { recursive: true });
    fs.writeFileSync(path.join(src, 'd', 'f'), 'mkfs data'.repeat(1000));
    fs.symlinkSync('d/f', path.join(src, 'l'));
    const img = path.join(dir, 'mkfs.erofs');
    execFileSync('mkfs.erofs', ['--quiet', img, src]);
    const r = openErofs(img);
    try {
      expect(r.superblock.checksumOk).toBe(true);
      expect(r.list().map((e) => e.path)).toEqual(['/', '/d', '/d/f', '/l']);
      expect(r.readFile('/d/f').toString()).toBe('mkfs data'.repeat(1000));
      expect(r.lookup('/l')?.linkTarget?.toString()).toBe('d/f');
    } finally {
      r.close();
    }
  });

  test('corrupt images fail with a typed error, not a crash', async () => {
    const img = path.join(dir, 'img.erofs');
    const b = ErofsBuilder.create(img);
    await b.writeFile('a/b', 'x'.repeat(5000));
    await b.finish();
    const good = fs.readFileSync(img);

    const badMagic = Buffer.from(good);
    badMagic[1024] ^= 1;
    fs.writeFileSync(img, badMagic);
    expect(() => openErofs(img)).toThrow(SmolvmError);

    const badSum = Buffer.from(good);
    badSum[1024 + 24] ^= 1; // build time: covered by the checksum
    fs.writeFileSync(img, badSum);
    const r = openErofs(img);
    expect(r.superblock.checksumOk).toBe(false);
    r.close();

    fs.writeFileSync(img, good.subarray(0, good.length - 4096));
    const t = openErofs(img);
    expect(() => t.list()).toThrow(/corrupt erofs image/);
    t.close();
  });
});
