import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '@smolvm/common';
import { ErofsBuilder, openErofs } from '../src';
import { Model, expectImageMatches, type ModelInode } from './helpers/model';
import { fsck, listDir, tempDir } from './helpers/tools';

const CAP = Buffer.from('0100000200200000000000000000000000000000', 'hex'); // cap_net_raw=ep, v2

function file(content: Buffer | string, extra: Partial<ModelInode> = {}): ModelInode {
  return {
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: 0,
    mtimeNsec: 0,
    xattrs: {},
    content: Buffer.from(content),
    ...extra,
  };
}

describe('ErofsBuilder', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('every entry type, size class and attribute survives a round trip', async () => {
    const out = path.join(dir, 'all.erofs');
    const model = new Model(1_700_000_000);
    const b = ErofsBuilder.create(out, { buildTime: 1_700_000_000, volumeName: 'testvol' });
    model.root.mode = 0o755;
    model.root.mtime = 0;
    b.mkdir('', { mode: 0o755 });

    const add = async (p: string, m: ModelInode): Promise<void> => {
      const attrs = { mode: m.mode, uid: m.uid, gid: m.gid, mtime: m.mtime, mtimeNsec: m.mtimeNsec, xattrs: m.xattrs };
      if (m.type === 'file') await b.writeFile(p, m.content ?? Buffer.alloc(0), attrs);
      else if (m.type === 'dir') b.mkdir(p, attrs);
      else if (m.type === 'symlink') b.symlink(p, m.target ?? '', attrs);
      else b.mknod(p, m.type, { ...attrs, major: m.major, minor: m.minor });
      model.add(p, m, 0);
    };
    const rnd = (n: number, seed: number): Buffer => {
      const out = Buffer.alloc(n);
      let x = seed;
      for (let i = 0; i < n; i++) {
        x = (x * 1103515245 + 12345) >>> 0;
        out[i] = x >>> 24;
      }
      return out;
    };

    await add('etc', {
      type: 'dir',
      mode: 0o755,
      uid: 0,
      gid: 0,
      mtime: 1_700_000_000,
      mtimeNsec: 0,
      xattrs: {},
      children: new Map(),
    });
    for (const [name, size] of [
      ['empty', 0],
      ['one', 1],
      ['block-1', 4095],
      ['block', 4096],
      ['block+1', 4097],
      ['two-blocks', 8192],
      ['3000', 3000],
      ['3100', 3100],
      ['big', 3 * 1024 * 1024 + 17],
    ] as const) {
      await add(`data/${name}`, file(rnd(size, size + 1), { mtime: 1_700_000_000 }));
    }
    await add('modes/setuid', file('su', { mode: 0o4755 }));
    await add('modes/setgid', file('sg', { mode: 0o2711 }));
    await add('modes/sticky', {
      type: 'dir',
      mode: 0o1777,
      uid: 0,
      gid: 0,
      mtime: 5,
      mtimeNsec: 0,
      xattrs: {},
      children: new Map(),
    });
    await add('modes/none', file('', { mode: 0 }));
    await add('owners/big-ids', file('ids', { uid: 4_000_000_000, gid: 70_000 }));
    await add('owners/small-ids', file('ids', { uid: 1000, gid: 65535 }));
    await add('times/nsec', file('t', { mtime: 1_234_567_890, mtimeNsec: 123_456_789 }));
    await add('times/negative', file('t', { mtime: -86_400 }));
    await add('times/far', file('t', { mtime: 2 ** 40 }));
    await add(
      'xattrs/cap',
      file('ping', { xattrs: { 'security.capability': CAP, 'user.note': Buffer.from('hello') } }),
    );
    await add('xattrs/dir', {
      type: 'dir',
      mode: 0o750,
      uid: 1,
      gid: 2,
      mtime: 3,
      mtimeNsec: 0,
      xattrs: { 'trusted.overlay.opaque': Buffer.from('y'), 'user.empty': Buffer.alloc(0) },
      children: new Map(),
    });
    await add(
      'xattrs/many',
      file('m'.repeat(3000), {
        xattrs: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`user.k${i}`, rnd(i * 7, i)])),
      }),
    );
    await add('links/sym', {
      type: 'symlink',
      mode: 0o777,
      uid: 0,
      gid: 0,
      mtime: 0,
      mtimeNsec: 0,
      xattrs: {},
      target: '../data/one',
    });
    await add('links/abs', {
      type: 'symlink',
      mode: 0o777,
      uid: 0,
      gid: 0,
      mtime: 0,
      mtimeNsec: 0,
      xattrs: {},
      target: '/etc/../../../outside',
    });
    await add('links/long', {
      type: 'symlink',
      mode: 0o777,
      uid: 0,
      gid: 0,
      mtime: 0,
      mtimeNsec: 0,
      xattrs: {},
      target: 'x/'.repeat(2000) + 'end',
    });
    await add('dev/null', {
      type: 'chardev',
      mode: 0o666,
      uid: 0,
      gid: 0,
      mtime: 0,
      mtimeNsec: 0,
      xattrs: {},
      major: 1,
      minor: 3,
    });
    await add('dev/sda', {
      type: 'blockdev',
      mode: 0o660,
      uid: 0,
      gid: 6,
      mtime: 0,
      mtimeNsec: 0,
      xattrs: {},
      major: 8,
      minor: 0,
    });
    await add('dev/wide', {
      type: 'chardev',
      mode: 0o600,
      uid: 0,
      gid: 0,
      mtime: 0,
      mtimeNsec: 0,
      xattrs: {},
      major: 4095,
      minor: 1_048_575,
    });
    await add('dev/fifo', { type: 'fifo', mode: 0o600, uid: 0, gid: 0, mtime: 0, mtimeNsec: 0, xattrs: {} });
    const longName = 'n'.repeat(255);
    await add(`names/${longName}`, file('long name'));
    await add('names/ünïcödé ✓', file('utf8'));
    const deep = Array.from({ length: 60 }, (_, i) => `d${i}`).join('/');
    await add(`${deep}/leaf`, file('deep'));
    // Thousands of entries: a directory spanning many blocks, looked up by binary search in the kernel.
    for (let i = 0; i < 3000; i++)
      await add(`many/entry-${String(i).padStart(5, '0')}-${'x'.repeat(i % 40)}`, file(i % 3 ? '' : `v${i}`));
    // Hard links, including one to a big file and one chain.
    b.link('links/hard-big', 'data/big');
    model.link('links/hard-big', 'data/big', 0);
    b.link('many/hard-empty', 'data/empty');
    model.link('many/hard-empty', 'data/empty', 0);
    b.link('links/hard-cap', 'xattrs/cap');
    model.link('links/hard-cap', 'xattrs/cap', 0);

    const stats = await b.finish();
    expect(stats.files).toBeGreaterThan(3000);
    expect(stats.hardLinks).toBe(3);
    expect(listDir(dir)).toEqual(['all.erofs']);
    expectImageMatches(out, model.flatten());

    const r = openErofs(out);
    try {
      expect(r.superblock.volumeName).toBe('testvol');
      expect(r.superblock.buildTime).toBe(1_700_000_000);
      // Compact inodes where the fields fit, extended where they do not.
      expect(r.lookup('/data/big')?.extended).toBe(false);
      expect(r.lookup('/owners/big-ids')?.extended).toBe(true);
      expect(r.lookup('/times/nsec')?.extended).toBe(true);
      const many = r.lookup('/many');
      expect(many && many.size).toBeGreaterThan(4096 * 10);
      // Entries are sorted by bytes across all blocks, '.' and '..' included.
      const names = r.readDirEntries(many as NonNullable<typeof many>).map((d) => d.name);
      expect(names).toEqual(
        [...names].sort((a, c) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(c, 'latin1'))),
      );
      expect(names).toContain('.');
      expect(names).toContain('..');
    } finally {
      r.close();
    }
  });

  test('xattr bodies larger than a block and tails that only just fit', async () => {
    const out = path.join(dir, 'huge-xattrs.erofs');
    const model = new Model(0);
    const b = ErofsBuilder.create(out, { buildTime: 0 });
    const huge = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`user.big${i}`, Buffer.alloc(3000, i + 1)]));
    for (let i = 0; i < 20; i++) {
      // Alternate record sizes so the first-fit packer has gaps to fill and blocks to spill over.
      const xattrs = i % 4 === 0 ? huge : i % 4 === 1 ? { 'user.s': Buffer.alloc(100, 7) } : {};
      const content = Buffer.alloc([4096 - 64 - 1, 4095, 3000, 1][i % 4] + 4096 * (i % 3), i);
      await b.writeFile(`f${i}`, content, { xattrs, mtime: i % 2 });
      model.add(`f${i}`, file(content, { xattrs, mtime: i % 2 }), 0);
      b.mkdir(`d${i}`, { xattrs, mtime: 0 });
      model.add(
        `d${i}`,
        { type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0, mtimeNsec: 0, xattrs, children: new Map() },
        0,
      );
    }
    await b.finish();
    expectImageMatches(out, model.flatten());
  });

  test('identical input gives identical bytes when uuid is fixed', async () => {
    const build = async (name: string): Promise<Buffer> => {
      const out = path.join(dir, name);
      const b = ErofsBuilder.create(out, { uuid: Buffer.alloc(16, 1) });
      await b.writeFile('b', 'bee', { mtime: 7 });
      await b.writeFile('a/x', Buffer.alloc(5000, 1), { mtime: 7 });
      b.symlink('c', 'b');
      await b.finish();
      return fs.readFileSync(out);
    };
    expect((await build('one')).equals(await build('two'))).toBe(true);
  });

  test('an empty image is valid', async () => {
    const out = path.join(dir, 'empty.erofs');
    const b = ErofsBuilder.create(out);
    await b.finish();
    fsck(out);
    const r = openErofs(out);
    expect(r.list().map((e) => e.path)).toEqual(['/']);
    r.close();
  });

  test('replacing entries: later writes win, a file over a directory drops its subtree', async () => {
    const out = path.join(dir, 'replace.erofs');
    const b = ErofsBuilder.create(out);
    await b.writeFile('d/inner', 'x');
    await b.writeFile('d', 'now a file');
    await b.writeFile('f', 'first');
    await b.writeFile('f', 'second');
    b.mkdir('m', { mode: 0o700 });
    await b.writeFile('m/keep', 'k');
    b.mkdir('m', { mode: 0o711, uid: 5 }); // merge: keeps children, takes new attributes
    const stats = await b.finish();
    const model = new Model(0);
    model.add('d', file('now a file'), 0);
    model.add('f', file('second'), 0);
    model.add(
      'm',
      { type: 'dir', mode: 0o711, uid: 5, gid: 0, mtime: 0, mtimeNsec: 0, xattrs: {}, children: new Map() },
      0,
    );
    model.add('m/keep', file('k'), 0);
    expectImageMatches(out, model.flatten());
    expect(stats.deadBytes).toBe(0); // only inline tails were written for the replaced files
  });

  test('invalid entries are usage errors and leave the builder usable', async () => {
    const out = path.join(dir, 'bad.erofs');
    const b = ErofsBuilder.create(out);
    expect(() => b.mkdir('../escape')).toThrow(UsageError);
    expect(() => b.mkdir('a/../../escape')).toThrow(/escapes the image root/);
    expect(() => b.mkdir('x'.repeat(256))).toThrow(/longer than 255/);
    expect(() => b.link('l', 'missing')).toThrow(/does not exist/);
    b.mkdir('dir');
    expect(() => b.link('l', 'dir')).toThrow(/is a directory/);
    expect(() => b.symlink('s', '')).toThrow(/empty target/);
    expect(() => b.mknod('d', 'chardev', { major: 4096 })).toThrow(/out of range/);
    expect(() => b.mkdir('u', { uid: -1 })).toThrow(/out of range/);
    await b.writeFile('f', 'file');
    await expect(b.writeFile('f/child', 'x')).rejects.toThrow(/not a directory/);
    // A source that fails mid-stream abandons that file only.
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield Buffer.alloc(10000, 1);
      throw new Error('source broke');
    }
    await expect(b.writeFile('partial', failing())).rejects.toThrow('source broke');
    await b.writeFile('after', 'still fine');
    // One streaming file at a time.
    const first = b.writeFile('slow', failing());
    await expect(b.writeFile('second', 'x')).rejects.toThrow(/await the previous writeFile/);
    await expect(first).rejects.toThrow('source broke');
    // './a/../b' style paths normalise inside the root.
    await b.writeFile('./x/../norm', 'n');
    await b.finish();
    fsck(out);
    const r = openErofs(out);
    expect(r.list().map((e) => e.path)).toEqual(['/', '/after', '/dir', '/f', '/norm']);
    r.close();
  });

  test('abort removes the temp file and nothing appears at the output path', async () => {
    const out = path.join(dir, 'aborted.erofs');
    const b = ErofsBuilder.create(out);
    await b.writeFile('a', Buffer.alloc(100000, 3));
    expect(listDir(dir)).toHaveLength(1); // the temp file beside the output
    await b.abort();
    expect(listDir(dir)).toEqual([]);
    await expect(b.finish()).rejects.toThrow(UsageError);
  });

  test('xattrs erofs cannot encode are dropped and counted', async () => {
    const out = path.join(dir, 'x.erofs');
    const b = ErofsBuilder.create(out);
    await b.writeFile('f', 'x', {
      xattrs: { 'user.ok': Buffer.from('1'), 'system.nfs4_acl': Buffer.from('2'), 'weird.name': Buffer.from('3') },
    });
    const stats = await b.finish();
    expect(stats.droppedXattrs).toBe(2);
    const r = openErofs(out);
    expect([...(r.lookup('/f')?.xattrs.keys() ?? [])]).toEqual(['user.ok']);
    r.close();
  });
});
