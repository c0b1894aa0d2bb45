// The real consumer: the Linux erofs driver. Where this machine lets us loop-mount (root, erofs in the
// kernel), the image is mounted read-only and checked through ordinary syscalls. Elsewhere the test
// reports itself as skipped.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { buildErofsFromLayers } from '../src';
import { tarLayer } from './helpers/layers';
import { makeTar, type TarSpec } from './helpers/tar-writer';
import { canMount } from './helpers/mount';
import { hasTool, sha256, tempDir } from './helpers/tools';

const mountable = canMount();
const maybe = mountable ? test : test.skip;
const CAP = Buffer.from('0100000200200000000000000000000000000000', 'hex');

/** Node has no xattr API; python's os.getxattr is the plain syscall. */
function getxattr(file: string, name: string): Buffer | undefined {
  const r = spawnSync('python3', [
    '-c',
    'import os,sys; sys.stdout.buffer.write(os.getxattr(sys.argv[1], sys.argv[2], follow_symlinks=False))',
    file,
    name,
  ]);
  return r.status === 0 ? r.stdout : undefined;
}

describe('kernel mount', () => {
  maybe('the Linux erofs driver reads back every entry', async () => {
    const dir = tempDir('erofs-mount-');
    const img = path.join(dir, 'image.erofs');
    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    const many: TarSpec[] = Array.from({ length: 2500 }, (_, i) => ({
      path: `many/${String(i * 7919).padStart(8, '0')}-${'n'.repeat(i % 97)}`,
      content: i % 5 ? '' : `#${i}`,
    }));
    const big = Buffer.alloc(5 * 1024 * 1024 + 123);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
    const l0 = makeTar([
      { path: 'bin/su', content: 'su', mode: 0o4755, uid: 0, gid: 0, mtime: 1_000 },
      {
        path: 'bin/ping',
        content: 'ping',
        mode: 0o755,
        xattrs: { 'security.capability': CAP, 'user.k': 'v' },
        mtime: 1_000,
      },
      { path: 'bin/big', content: big, mtime: 1_000 },
      // An xattr body bigger than a block: the inode's record spans blocks.
      {
        path: 'bin/huge-xattrs',
        content: 'h'.repeat(3000),
        xattrs: { 'user.a': Buffer.alloc(3000, 1), 'user.b': Buffer.alloc(3000, 2) },
        mtime: 1_000,
      },
      { path: 'bin/link', type: 'hardlink', linkPath: 'bin/big' },
      { path: 'dev/null', type: 'chardev', devMajor: 1, devMinor: 3, mode: 0o666, mtime: 1_000 },
      { path: 'dev/sdz', type: 'blockdev', devMajor: 259, devMinor: 70000, mode: 0o660, mtime: 1_000 },
      { path: 'run/fifo', type: 'fifo', mode: 0o600, mtime: 1_000 },
      { path: 'tmp/', type: 'dir', mode: 0o1777, mtime: 1_000 },
      {
        path: 'home/user/file',
        content: 'x',
        uid: 100_000,
        gid: 200_000,
        mtime: 1_234_567_890,
        mtimeNsec: 987_654_321,
      },
      { path: 'sym', type: 'symlink', linkPath: 'bin/../bin/su', mtime: 1_000 },
      { path: 'longsym', type: 'symlink', linkPath: 'y'.repeat(4000), mtime: 1_000 },
      { path: `names/${'L'.repeat(255)}`, content: 'long', mtime: 1_000 },
      ...many,
    ]);
    const l1 = makeTar([{ path: 'many/.wh.00000000-' }, { path: 'tmp/.wh..wh..opq' }]);
    await buildErofsFromLayers([tarLayer(l0, 'gzip'), tarLayer(l1)], img, { buildTime: 1_000 });
    execFileSync('mount', ['-t', 'erofs', '-o', 'loop,ro', img, mnt], { timeout: 20000 });
    try {
      const st = (p: string): fs.BigIntStats => fs.lstatSync(path.join(mnt, p), { bigint: true });
      expect(st('').ino).not.toBe(0n);
      expect(fs.readdirSync(mnt).sort()).toEqual([
        'bin',
        'dev',
        'home',
        'longsym',
        'many',
        'names',
        'run',
        'sym',
        'tmp',
      ]);
      expect(Number(st('bin/su').mode & 0o7777n).toString(8)).toBe('4755');
      expect(Number(st('tmp').mode & 0o7777n).toString(8)).toBe('1777');
      expect(sha256(fs.readFileSync(path.join(mnt, 'bin/big')))).toBe(sha256(big));
      expect(st('bin/big').nlink).toBe(2n);
      expect(st('bin/big').ino).toBe(st('bin/link').ino);
      const dev = st('dev/null');
      expect(dev.isCharacterDevice()).toBe(true);
      expect(dev.rdev).toBe(BigInt((1 << 8) | 3));
      const blk = st('dev/sdz');
      expect(blk.isBlockDevice()).toBe(true);
      // glibc makedev(259, 70000)
      expect(blk.rdev).toBe(BigInt(70000 & 0xff) | (BigInt(259 & 0xfff) << 8n) | (BigInt(70000 & ~0xff) << 12n));
      expect(st('run/fifo').isFIFO()).toBe(true);
      const home = st('home/user/file');
      expect([home.uid, home.gid, home.mtimeNs]).toEqual([100_000n, 200_000n, 1_234_567_890_987_654_321n]);
      expect(st('bin/su').mtimeNs).toBe(1_000_000_000_000n);
      expect(fs.readlinkSync(path.join(mnt, 'sym'))).toBe('bin/../bin/su');
      expect(fs.readlinkSync(path.join(mnt, 'longsym'))).toBe('y'.repeat(4000));
      expect(fs.readFileSync(path.join(mnt, 'names', 'L'.repeat(255)), 'utf8')).toBe('long');
      // Every name in the multi-block directory resolves through the kernel's binary search.
      const names = fs.readdirSync(path.join(mnt, 'many')).sort();
      expect(names).toEqual(
        many
          .map((m) => m.path.slice(5))
          .filter((n) => n !== '00000000-')
          .sort(),
      );
      for (const n of names) expect(fs.lstatSync(path.join(mnt, 'many', n)).isFile()).toBe(true);
      expect(fs.readFileSync(path.join(mnt, 'many', many[5].path.slice(5)), 'utf8')).toBe('#5');
      if (hasTool('python3')) {
        expect(getxattr(path.join(mnt, 'bin/ping'), 'security.capability')).toEqual(CAP);
        expect(getxattr(path.join(mnt, 'bin/ping'), 'user.k')).toEqual(Buffer.from('v'));
        expect(getxattr(path.join(mnt, 'bin/huge-xattrs'), 'user.b')).toEqual(Buffer.alloc(3000, 2));
        expect(getxattr(path.join(mnt, 'bin/su'), 'user.k')).toBeUndefined();
      }
      expect(fs.readFileSync(path.join(mnt, 'bin/huge-xattrs'), 'utf8')).toBe('h'.repeat(3000));
    } finally {
      execFileSync('umount', [mnt]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
