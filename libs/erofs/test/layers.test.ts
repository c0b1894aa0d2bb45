import fs from 'node:fs';
import path from 'node:path';
import { SmolvmError } from '@smolvm/common';
import { buildErofsFromLayers, InvalidLayerError, openErofs, type LayerSource } from '../src';
import { tarLayer, zstdAvailable, type TestCompression } from './helpers/layers';
import { Model, expectImageMatches, type ModelInode } from './helpers/model';
import { makeTar, type TarSpec } from './helpers/tar-writer';
import { listDir, tempDir } from './helpers/tools';

const CAP = Buffer.from('0100000200200000000000000000000000000000', 'hex');
const BT = 1_600_000_000;

const dirNode = (extra: Partial<ModelInode> = {}): ModelInode => ({
  type: 'dir',
  mode: 0o755,
  uid: 0,
  gid: 0,
  mtime: BT,
  mtimeNsec: 0,
  xattrs: {},
  children: new Map(),
  ...extra,
});
const fileNode = (content: string | Buffer, extra: Partial<ModelInode> = {}): ModelInode => ({
  type: 'file',
  mode: 0o644,
  uid: 0,
  gid: 0,
  mtime: BT,
  mtimeNsec: 0,
  xattrs: {},
  content: Buffer.from(content),
  ...extra,
});

describe('buildErofsFromLayers', () => {
  let dir: string;
  let out: string;
  beforeEach(() => {
    dir = tempDir();
    out = path.join(dir, 'image.erofs');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const compressions: TestCompression[] = zstdAvailable ? ['none', 'gzip', 'zstd'] : ['none', 'gzip'];
  if (!zstdAvailable) test.todo('zstd layers (install the zstd CLI to generate test data)');

  test.each(compressions)('whiteouts, opaque dirs and hard links across four %s layers', async (how) => {
    const l0: TarSpec[] = [
      { path: 'etc/', type: 'dir', mtime: BT },
      { path: 'etc/passwd', content: 'root:x:0:0\n', mtime: BT },
      { path: 'etc/shadow', content: 'secret', mode: 0o640, gid: 42, mtime: BT },
      { path: 'bin/', type: 'dir', mtime: BT },
      { path: 'bin/busybox', content: Buffer.alloc(20000, 9), mode: 0o755, mtime: BT },
      { path: 'bin/sh', type: 'hardlink', linkPath: 'bin/busybox' },
      { path: 'bin/ls', type: 'symlink', linkPath: 'busybox', mtime: BT },
      { path: 'opt/app/', type: 'dir', mtime: BT },
      { path: 'opt/app/old1', content: 'o1', mtime: BT },
      { path: 'opt/app/sub/old2', content: 'o2', mtime: BT },
      { path: 'var/gone/', type: 'dir', mtime: BT },
      { path: 'var/gone/file', content: 'x', mtime: BT },
      { path: 'usr/bin/ping', content: 'ping', mode: 0o4755, xattrs: { 'security.capability': CAP }, mtime: BT },
    ];
    const l1: TarSpec[] = [
      { path: 'etc/.wh.shadow' },
      { path: 'var/.wh.gone' },
      { path: 'opt/app/.wh..wh..opq' },
      { path: 'opt/app/new', content: 'n', mtime: BT },
      // A hard link in a later layer to a file from a lower one.
      { path: 'bin/cat', type: 'hardlink', linkPath: '/bin/busybox' },
      { path: 'dev/null', type: 'chardev', devMajor: 1, devMinor: 3, mode: 0o666, mtime: BT },
      { path: 'dev/loop0', type: 'blockdev', devMajor: 7, devMinor: 0, mode: 0o660, gid: 6, mtime: BT },
      { path: 'run/fifo', type: 'fifo', mode: 0o600, mtime: BT },
    ];
    const l2: TarSpec[] = [
      // Replacing a hard-linked name keeps the other names on the old inode.
      { path: 'bin/busybox', content: 'new busybox', mode: 0o755, mtime: BT },
      { path: 'etc/shadow', content: 'back again', mode: 0o600, mtime: BT },
      { path: 'var/gone/fresh', content: 'f', mtime: BT },
      { path: 'opt/app/.wh.new' },
      { path: 'tmp/', type: 'dir', mode: 0o1777, mtime: BT },
    ];
    const l3: TarSpec[] = [
      { path: 'bin/.wh.sh' },
      { path: 'etc/passwd', type: 'symlink', linkPath: '/run/passwd', mtime: BT },
      // Same-layer whiteout after the entry: only lower layers are affected, so this stays.
      { path: 'same/kept', content: 'kept', mtime: BT },
      { path: 'same/.wh.kept' },
    ];
    const layers = [l0, l1, l2, l3].map((entries, i) =>
      tarLayer(makeTar(entries), how, { seed: i + 1, maxChunk: 3000 }),
    );
    const stats = await buildErofsFromLayers(layers, out, { buildTime: BT });

    const m = new Model(BT);
    m.add('etc', dirNode(), 0);
    m.add(
      'etc/passwd',
      { type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: BT, mtimeNsec: 0, xattrs: {}, target: '/run/passwd' },
      3,
    );
    m.add('etc/shadow', fileNode('back again', { mode: 0o600 }), 2);
    m.add('bin', dirNode(), 0);
    const oldBusybox = fileNode(Buffer.alloc(20000, 9), { mode: 0o755 });
    m.add('bin/cat', oldBusybox, 1);
    m.add('bin/busybox', fileNode('new busybox', { mode: 0o755 }), 2);
    m.add(
      'bin/ls',
      { type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: BT, mtimeNsec: 0, xattrs: {}, target: 'busybox' },
      0,
    );
    m.add('opt', dirNode(), 0);
    m.add('opt/app', dirNode(), 0);
    m.add('var', dirNode(), 0);
    m.add('var/gone', dirNode(), 2);
    m.add('var/gone/fresh', fileNode('f'), 2);
    m.add('usr', dirNode(), 0);
    m.add('usr/bin', dirNode(), 0);
    m.add('usr/bin/ping', fileNode('ping', { mode: 0o4755, xattrs: { 'security.capability': CAP } }), 0);
    m.add('dev', dirNode(), 1);
    m.add(
      'dev/null',
      { type: 'chardev', mode: 0o666, uid: 0, gid: 0, mtime: BT, mtimeNsec: 0, xattrs: {}, major: 1, minor: 3 },
      1,
    );
    m.add(
      'dev/loop0',
      { type: 'blockdev', mode: 0o660, uid: 0, gid: 6, mtime: BT, mtimeNsec: 0, xattrs: {}, major: 7, minor: 0 },
      1,
    );
    m.add('run', dirNode(), 1);
    m.add('run/fifo', { type: 'fifo', mode: 0o600, uid: 0, gid: 0, mtime: BT, mtimeNsec: 0, xattrs: {} }, 1);
    m.add('tmp', dirNode({ mode: 0o1777 }), 2);
    m.add('same', dirNode(), 3);
    m.add('same/kept', fileNode('kept'), 3);
    expectImageMatches(out, m.flatten());

    expect(stats.layers.map((l) => l.compression)).toEqual([how, how, how, how]);
    expect(stats.whiteoutRemovals).toBe(6); // shadow, gone, old1, sub, new, sh
    // The replaced busybox lives on through bin/cat, and the removed small files were inline tails.
    expect(stats.deadBytes).toBe(0);
    expect(listDir(dir)).toEqual(['image.erofs']);
  });

  test('dead space: data of files replaced in later layers stays behind and is reported', async () => {
    const big = Buffer.alloc(3 * 4096, 1);
    await buildErofsFromLayers(
      [tarLayer(makeTar([{ path: 'f', content: big }])), tarLayer(makeTar([{ path: 'f', content: 'small' }]))],
      out,
    ).then((stats) => expect(stats.deadBytes).toBe(3 * 4096));
    const r = openErofs(out);
    expect(r.readFile('/f').toString()).toBe('small');
    r.close();
  });

  test('pax and GNU extensions: long names and links, binary xattrs, nanoseconds, big ids, base-256', async () => {
    const long = `${'p'.repeat(120)}/${'q'.repeat(200)}/${'r'.repeat(255)}`;
    const longGnu = `${'g'.repeat(150)}/${'h'.repeat(250)}`;
    const binary = Buffer.from([0, 1, 2, 10, 13, 0x3d, 0x20, 0xff, 0]);
    const tar = makeTar([
      { path: long, content: 'via pax', mtime: BT },
      { path: longGnu, content: 'via gnu', longNames: 'gnu', mtime: BT },
      { path: 'l/pax-link', type: 'symlink', linkPath: long, mtime: BT },
      { path: 'l/gnu-link', type: 'hardlink', linkPath: longGnu, longNames: 'gnu' },
      {
        path: 'x/bin',
        content: 'b',
        xattrs: { 'user.bin': binary, 'security.capability': CAP, 'trusted.t': 'v' },
        mtime: BT,
      },
      { path: 'x/nsec', content: 'n', mtime: 1_500_000_000, mtimeNsec: 5 },
      { path: 'x/ids', content: 'i', uid: 3_000_000_000, gid: 2_500_000_000, mtime: BT },
      { path: 'x/b256', content: 'b256', uid: 70_000, gid: 80_000, base256: true, mtime: BT },
    ]);
    await buildErofsFromLayers([tarLayer(tar, 'gzip', { maxChunk: 97 })], out, { buildTime: BT });
    const m = new Model(BT);
    m.add(long, fileNode('via pax'), 0);
    const gnu = fileNode('via gnu');
    m.add(longGnu, gnu, 0);
    m.add(
      'l/pax-link',
      { type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: BT, mtimeNsec: 0, xattrs: {}, target: long },
      0,
    );
    m.link('l/gnu-link', longGnu, 0);
    m.add(
      'x/bin',
      fileNode('b', { xattrs: { 'user.bin': binary, 'security.capability': CAP, 'trusted.t': Buffer.from('v') } }),
      0,
    );
    m.add('x/nsec', fileNode('n', { mtime: 1_500_000_000, mtimeNsec: 5 }), 0);
    m.add('x/ids', fileNode('i', { uid: 3_000_000_000, gid: 2_500_000_000 }), 0);
    m.add('x/b256', fileNode('b256', { uid: 70_000, gid: 80_000 }), 0);
    expectImageMatches(out, m.flatten());
  });

  test('symlinks in parent paths resolve inside the image root', async () => {
    const l0 = makeTar([
      { path: 'usr/lib/', type: 'dir', mtime: BT },
      { path: 'lib', type: 'symlink', linkPath: 'usr/lib', mtime: BT },
      { path: 'abs', type: 'symlink', linkPath: '/usr/lib', mtime: BT },
      { path: 'up', type: 'symlink', linkPath: '../../../..', mtime: BT },
    ]);
    const l1 = makeTar([
      { path: 'lib/via-rel', content: 'r', mtime: BT },
      { path: 'abs/via-abs', content: 'a', mtime: BT },
      // '..' above the root stays at the root, like chroot: this lands in /etc, never on the host.
      { path: 'up/etc/escaped', content: 'e', mtime: BT },
      { path: 'lib/.wh.via-rel' },
    ]);
    await buildErofsFromLayers([tarLayer(l0), tarLayer(l1)], out, { buildTime: BT });
    const r = openErofs(out);
    try {
      const paths = r.list().map((e) => e.path);
      expect(paths).toEqual([
        '/',
        '/abs',
        '/etc',
        '/etc/escaped',
        '/lib',
        '/up',
        '/usr',
        '/usr/lib',
        '/usr/lib/via-abs',
        '/usr/lib/via-rel',
      ]);
      expect(r.lookup('/lib')?.type).toBe('symlink');
    } finally {
      r.close();
    }
  });

  test('trees made deep through symlinked parents are pruned without exhausting the stack', async () => {
    const down = 'd/'.repeat(2000);
    const chain: TarSpec[] = [{ path: 's0', type: 'symlink', linkPath: down }];
    let at = 's0';
    for (let i = 1; i < 12; i++) {
      chain.push({ path: `${at}/s${i}`, type: 'symlink', linkPath: down });
      at = `${at}/s${i}`;
    }
    chain.push({ path: `${at}/leaf`, content: 'deep' });
    // Same-layer whiteout: walks the whole 24000-level tree but may remove nothing from it.
    chain.push({ path: '.wh.d' });
    const stats = await buildErofsFromLayers(
      [tarLayer(makeTar(chain)), tarLayer(makeTar([{ path: '.wh.d' }, { path: '.wh.s0' }]))],
      out,
    );
    expect(stats.whiteoutRemovals).toBe(2);
    const r = openErofs(out);
    expect(r.list().map((e) => e.path)).toEqual(['/']);
    r.close();
  });

  test('root entries and ./ prefixes update the root directory', async () => {
    await buildErofsFromLayers(
      [
        tarLayer(
          makeTar([
            { path: './', type: 'dir', mode: 0o700, uid: 5, mtime: 99 },
            { path: './a', content: 'a', mtime: 99 },
          ]),
        ),
      ],
      out,
    );
    const r = openErofs(out);
    const root = r.lookup('/');
    expect([root?.mode.toString(8), root?.uid, root?.mtime]).toEqual(['700', 5, 99]);
    r.close();
  });

  test('media type and magic bytes must agree', async () => {
    const tar = makeTar([{ path: 'a', content: 'a' }]);
    const mislabelled: LayerSource = {
      ...tarLayer(tar, 'none'),
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    };
    await expect(buildErofsFromLayers([mislabelled], out)).rejects.toThrow(
      /layer 0: media type .* says gzip but the data is not compressed/,
    );
    // Without a media type the bytes decide.
    const unlabelled: LayerSource = { ...tarLayer(tar, 'gzip'), mediaType: undefined };
    await expect(buildErofsFromLayers([unlabelled], out)).resolves.toMatchObject({ layers: [{ compression: 'gzip' }] });
  });

  test('accepts Node readable streams and a single zero block as end marker', async () => {
    const tar = makeTar([{ path: 'a', content: 'a' }], { end: 'one' });
    const stats = await buildErofsFromLayers([{ open: () => fs.createReadStream(writeTemp(dir, tar)) }], out);
    expect(stats.files).toBe(1);
  });
});

function writeTemp(dir: string, data: Buffer): string {
  const p = path.join(dir, `blob-${Math.random().toString(16).slice(2)}`);
  fs.writeFileSync(p, data);
  return p;
}

describe('buildErofsFromLayers failures', () => {
  let dir: string;
  let out: string;
  beforeEach(() => {
    dir = tempDir();
    out = path.join(dir, 'image.erofs');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const good = makeTar([{ path: 'ok', content: Buffer.alloc(9000, 1) }]);

  /** Builds [good layer, bad layer] and expects a typed error naming layer 1; no file may remain. */
  async function expectFailure(
    bad: LayerSource | Buffer,
    message: RegExp,
    type: abstract new (...args: never[]) => SmolvmError = InvalidLayerError,
  ): Promise<SmolvmError> {
    const layers = [tarLayer(good), Buffer.isBuffer(bad) ? tarLayer(bad) : bad];
    const err = await buildErofsFromLayers(layers, out).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(type);
    expect((err as Error).message).toMatch(message);
    expect(listDir(dir)).toEqual([]);
    return err as SmolvmError;
  }

  test.each([
    ['../etc/passwd', /layer 1, entry '\.\.\/etc\/passwd': path escapes the image root/],
    ['a/../../x', /escapes the image root/],
    ['/../../x', /escapes the image root/],
  ])('path traversal %s is rejected', async (p, msg) => {
    const err = await expectFailure(makeTar([{ path: p, content: 'pwned' }]), msg);
    expect(err).toMatchObject({ layerIndex: 1 });
  });

  test('hard links: escaping, missing and directory targets', async () => {
    await expectFailure(
      makeTar([{ path: 'l', type: 'hardlink', linkPath: '../../etc/passwd' }]),
      /entry 'l': path escapes/,
    );
    await expectFailure(
      makeTar([{ path: 'l', type: 'hardlink', linkPath: 'nope' }]),
      /hard link target 'nope' does not exist/,
    );
    await expectFailure(
      makeTar([
        { path: 'd/', type: 'dir' },
        { path: 'l', type: 'hardlink', linkPath: 'd' },
      ]),
      /is a directory/,
    );
  });

  test('truncated streams: plain, gzip and zstd', async () => {
    const tar = makeTar([{ path: 'big', content: Buffer.alloc(50000, 7) }]);
    await expectFailure(tar.subarray(0, 20000), /layer 1, entry 'big': archive is truncated/);
    await expectFailure(tar.subarray(0, 512 + 50000 + (512 - (50000 % 512))), /end-of-archive marker/);
    const gz = tarLayer(tar, 'gzip');
    const gzBytes = await collect(gz);
    await expectFailure({ open: () => once(gzBytes.subarray(0, gzBytes.length - 20)) }, /corrupt gzip data|truncated/);
    if (zstdAvailable) {
      const zs = await collect(tarLayer(tar, 'zstd'));
      await expectFailure({ open: () => once(zs.subarray(0, zs.length - 10)) }, /corrupt zstd data|truncated/);
    }
    await expectFailure({ open: () => once(Buffer.alloc(0)) }, /end-of-archive marker/);
  });

  test('malicious headers', async () => {
    const hugePax = Buffer.concat([makeTar([{ path: 'x', pax: [['comment', 'c'.repeat(2 << 20)]] }])]);
    await expectFailure(hugePax, /pax header of \d+ bytes exceeds/);
    const corrupt = Buffer.from(good);
    corrupt[10] ^= 0xff;
    await expectFailure(corrupt, /checksum mismatch/);
    await expectFailure(Buffer.alloc(4096, 0x41), /checksum mismatch|invalid/);
    await expectFailure(
      makeTar([{ path: 'huge', content: 'tiny', declaredSize: 2 ** 50, base256: true }]),
      /archive is truncated/,
    );
    await expectFailure(makeTar([{ path: 's', flag: 'S' }]), /sparse files are not supported/);
    await expectFailure(makeTar([{ path: 'z', flag: 'Z' }]), /unsupported tar entry type 'Z'/);
    await expectFailure(makeTar([{ path: 'n'.repeat(256), content: 'x' }]), /longer than 255 bytes/);
    await expectFailure(
      makeTar([
        { path: 'a', type: 'symlink', linkPath: 'b' },
        { path: 'b', type: 'symlink', linkPath: 'a' },
        { path: 'a/x', content: 'x' },
      ]),
      /too many levels of symbolic links/,
    );
    await expectFailure(
      makeTar([
        { path: 'f', content: 'f' },
        { path: 'f/x', content: 'x' },
      ]),
      /entry 'f\/x': parent component 'f' is not a directory/,
    );
    await expectFailure(makeTar([{ path: 'dev', type: 'chardev', devMajor: 5000 }]), /device number/);
    await expectFailure(makeTar([{ path: 'p', pax: [['path', 'bad\u0000name']] }]), /NUL byte/);
    await expectFailure(makeTar([{ path: 'p', pax: [['uid', 'abc']] }]), /invalid pax uid/);
    await expectFailure(makeTar([{ path: 'p', pax: [['GNU.sparse.major', '1']] }]), /sparse/);
    await expectFailure(makeTar([{ path: '.wh.', content: '' }]), /invalid file name/);
  });

  test('paths longer than PATH_MAX are rejected', async () => {
    await expectFailure(makeTar([{ path: `${'a/'.repeat(2100)}x`, content: 'x' }]), /path longer than 4096 bytes/);
  });

  test('source errors keep their type and name the layer', async () => {
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield good.subarray(0, 1000);
      throw new Error('connection reset');
    }
    await expectFailure({ open: () => broken() }, /layer 1: reading the layer failed: connection reset/, SmolvmError);
    const own = new SmolvmError('digest mismatch');
    async function* typed(): AsyncGenerator<Uint8Array> {
      yield good.subarray(0, 600);
      throw own;
    }
    const err = await expectFailure({ open: () => typed() }, /digest mismatch/, SmolvmError);
    expect(err).toBe(own);
    await expectFailure(
      {
        open: () => {
          throw new Error('blob missing');
        },
      },
      /layer 1: reading the layer failed: blob missing/,
      SmolvmError,
    );
  });

  test('an existing file at the output path is only replaced on success', async () => {
    fs.writeFileSync(out, 'previous image');
    await buildErofsFromLayers([tarLayer(good), tarLayer(good.subarray(0, 700))], out).catch(() => undefined);
    expect(fs.readFileSync(out, 'utf8')).toBe('previous image');
    expect(listDir(dir)).toEqual(['image.erofs']);
    await buildErofsFromLayers([tarLayer(good)], out);
    expect(fs.readFileSync(out).readUInt32LE(1024)).toBe(0xe0f5e1e2);
  });
});

async function collect(l: LayerSource): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of (await l.open()) as AsyncIterable<Uint8Array>) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

async function* once(b: Buffer): AsyncGenerator<Uint8Array> {
  if (b.length) yield b;
}
