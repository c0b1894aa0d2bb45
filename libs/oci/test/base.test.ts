// The base image of bare VMs: the set-up's tar imported into the store as an ordinary image
// (listed, prepared into an erofs, the same digest on every import), found through a custom
// SMOLVM_HOME like the kernel, and refused when another user could have written it; the same
// record and tar carried by the single-file smolvm and extracted from it are found as well.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { NotFoundError } from '@smolvm/common';
import { MANIFEST_VERSION, extractAssets, type SeaFile } from '@smolvm/sea';
import { tarEntries } from '../../../tools/fixtures/tar';
import { ensureBuiltBase, findBuiltBase, isBuiltBaseReference } from '../src';
import { newService, tempHome, type TempHome } from './helpers/env';

jest.setTimeout(60_000);

const REFERENCE = 'smolvm.internal/base:debian-bookworm-0123456789abcdef';
let home: TempHome;
beforeEach(() => {
  home = tempHome();
});
afterEach(() => home.cleanup());

/** The record and zstd tar tools/base/build makes. */
function baseFiles(): { record: Buffer; layer: Buffer } {
  const tar = tarEntries([
    { path: 'usr', type: 'dir' },
    { path: 'usr/local', type: 'dir' },
    { path: 'usr/local/bin', type: 'dir' },
    { path: 'etc', type: 'dir' },
    { path: 'etc/debian_version', type: 'file', content: '12.99\n' },
  ]);
  const zst = spawnSync('zstd', ['-q', '-c'], { input: tar });
  if (zst.status !== 0) throw new Error('zstd failed');
  const record = JSON.stringify({
    format: 1,
    recipe: '0123456789abcdef',
    reference: REFERENCE,
    layer: 'debian-0123456789abcdef.tar.zst',
    created: '2026-01-01T00:00:00Z',
  });
  return { record: Buffer.from(record), layer: zst.stdout };
}

/** What tools/base/build leaves in `<cache>/base/`: a zstd tar and its record. */
function writeBuiltBase(cache: string): string {
  const dir = path.join(cache, 'base');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(cache, 0o700);
  const { record, layer } = baseFiles();
  fs.writeFileSync(path.join(dir, 'debian-0123456789abcdef.tar.zst'), layer, { mode: 0o600 });
  const recordPath = path.join(dir, 'base.json');
  fs.writeFileSync(recordPath, record, { mode: 0o600 });
  return recordPath;
}

/** The base as the single-file smolvm carries it (assets `base/...`), extracted into `cache` as it does. */
function extractShippedBase(cache: string, damage?: 'layer'): string {
  fs.mkdirSync(cache, { recursive: true, mode: 0o700 });
  const { record, layer } = baseFiles();
  const data = new Map([
    ['base/base.json', record],
    ['base/debian-0123456789abcdef.tar.zst', layer],
  ]);
  const files: SeaFile[] = [...data].map(([name, content], i) => ({
    name,
    asset: `a${i}`,
    sha256: sha256(content),
    size: content.length,
    mode: 0o644,
    gzip: false,
  }));
  const manifestText = JSON.stringify({
    version: MANIFEST_VERSION,
    app: 'cli',
    node: process.version,
    main: sha256(Buffer.from('main')),
    files,
  });
  const readAsset = (key: string): Buffer => {
    const content = [...data.values()][Number(key.slice(1))];
    // A damaged executable: the tar's bytes are not those its manifest names.
    if (damage !== 'layer' || key !== 'a1') return content;
    const changed = Buffer.from(content);
    changed[changed.length - 1] ^= 1;
    return changed;
  };
  return path.join(extractAssets({ cacheDir: cache, manifestText, readAsset }).dir, 'base');
}

function sha256(data: Buffer): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

it('imports the built base as a one-layer image: listed, prepared, the same digest on every import', async () => {
  writeBuiltBase(path.join(home.home, 'cache'));
  const service = newService(home);
  try {
    expect(await ensureBuiltBase(service.store, home.env)).toBe(REFERENCE);
    const [record] = service.list();
    expect(record).toMatchObject({
      reference: REFERENCE,
      registry: 'smolvm.internal',
      repository: 'base',
      tag: 'debian-bookworm-0123456789abcdef',
    });
    const prepared = await service.prepare(REFERENCE, { pull: 'never' });
    expect(prepared.manifestDigest).toBe(record.manifestDigest);
    expect(prepared.config.cmd).toEqual(['/bin/bash']);
    expect(prepared.config.env).toEqual(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
    // diff_id is the uncompressed tar's digest, not the zstd blob's.
    const layer = service.inspect(REFERENCE).manifest.layers[0];
    expect(layer.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
    expect(prepared.config.diffIds[0]).not.toBe(layer.digest);
    const fsck = spawnSync('fsck.erofs', [prepared.erofsPath], { encoding: 'utf8' });
    expect(fsck.status).toBe(0);
    // Present: not imported again. Removed: imported again as the very same image.
    expect(await ensureBuiltBase(service.store, home.env)).toBe(REFERENCE);
    service.remove(REFERENCE);
    await ensureBuiltBase(service.store, home.env);
    expect(service.list().map((r) => r.manifestDigest)).toEqual([record.manifestDigest]);
  } finally {
    await service.close();
  }
});

it("a custom SMOLVM_HOME finds the user's own built base, like the kernel", () => {
  writeBuiltBase(path.join(home.home, 'xdg-cache', 'smolvm'));
  const env = { SMOLVM_HOME: path.join(home.home, 'other'), XDG_CACHE_HOME: path.join(home.home, 'xdg-cache') };
  expect(findBuiltBase(env)?.reference).toBe(REFERENCE);
});

it('no base, or one another user could have written, is a NotFoundError saying how to get one', async () => {
  const service = newService(home);
  try {
    const env = { ...home.env, XDG_CACHE_HOME: path.join(home.home, 'none') };
    await expect(ensureBuiltBase(service.store, env)).rejects.toThrow(NotFoundError);
    await expect(ensureBuiltBase(service.store, env)).rejects.toMatchObject({
      remedy: expect.stringMatching(/tools\/setup.*base_image.*SMOLVM_BASE_IMAGE/),
    });
    const record = writeBuiltBase(path.join(home.home, 'cache'));
    fs.chmodSync(record, 0o666);
    expect(findBuiltBase(env)).toBeUndefined();
    fs.chmodSync(record, 0o600);
    fs.chmodSync(path.dirname(record), 0o770);
    expect(findBuiltBase(env)).toBeUndefined();
    fs.chmodSync(path.dirname(record), 0o700);
    expect(findBuiltBase(env)?.reference).toBe(REFERENCE);
    // A record naming a file outside its directory, or another image, is not a base.
    fs.writeFileSync(record, JSON.stringify({ reference: REFERENCE, layer: '../../x.tar.zst', created: 'x' }));
    expect(findBuiltBase(env)).toBeUndefined();
    fs.writeFileSync(
      record,
      JSON.stringify({
        reference: 'docker.io/library/alpine:3',
        layer: 'debian-0123456789abcdef.tar.zst',
        created: 'x',
      }),
    );
    expect(findBuiltBase(env)).toBeUndefined();
  } finally {
    await service.close();
  }
  expect(isBuiltBaseReference(REFERENCE)).toBe(true);
  expect(isBuiltBaseReference('smolvm.internal/base:x@sha256:00')).toBe(false);
});

describe('the base the single-file smolvm carries', () => {
  it("is found and imported after the set-up's own build, which comes first", async () => {
    const cache = path.join(home.home, 'cache');
    const shippedDir = extractShippedBase(cache);
    const env = { ...home.env, XDG_CACHE_HOME: path.join(home.home, 'none') };
    expect(findBuiltBase(env)).toBeUndefined();
    expect(findBuiltBase(env, { shippedDir })).toEqual({
      reference: REFERENCE,
      layerPath: path.join(shippedDir, 'debian-0123456789abcdef.tar.zst'),
      created: '2026-01-01T00:00:00Z',
    });
    const service = newService(home);
    try {
      expect(await ensureBuiltBase(service.store, env, { shippedDir })).toBe(REFERENCE);
      expect(service.list().map((r) => r.reference)).toEqual([REFERENCE]);
    } finally {
      await service.close();
    }
    writeBuiltBase(cache);
    expect(findBuiltBase(env, { shippedDir })?.layerPath).toBe(
      path.join(cache, 'base', 'debian-0123456789abcdef.tar.zst'),
    );
  });

  it('is refused when damaged, changeable by another user, or outside this cache', () => {
    const cache = path.join(home.home, 'cache');
    const env = { ...home.env, XDG_CACHE_HOME: path.join(home.home, 'none') };
    // Damaged in the executable: extraction fails, and leaves nothing to find.
    expect(() => extractShippedBase(cache, 'layer')).toThrow(/damaged/);
    expect(fs.readdirSync(path.join(cache, 'sea')).filter((n) => !n.startsWith('.'))).toEqual([]);
    const shippedDir = extractShippedBase(cache);
    const layer = path.join(shippedDir, 'debian-0123456789abcdef.tar.zst');
    // Changed after extraction so that other users could write it.
    fs.chmodSync(layer, 0o666);
    expect(findBuiltBase(env, { shippedDir })).toBeUndefined();
    fs.chmodSync(layer, 0o600);
    fs.chmodSync(path.dirname(shippedDir), 0o777);
    expect(findBuiltBase(env, { shippedDir })).toBeUndefined();
    fs.chmodSync(path.dirname(shippedDir), 0o700);
    expect(findBuiltBase(env, { shippedDir })?.reference).toBe(REFERENCE);
    // Trusted only inside this user's cache.
    const elsewhere = path.join(home.home, 'elsewhere');
    fs.cpSync(shippedDir, elsewhere, { recursive: true });
    expect(findBuiltBase(env, { shippedDir: elsewhere })).toBeUndefined();
    // A record naming a file outside its directory.
    fs.writeFileSync(
      path.join(shippedDir, 'base.json'),
      JSON.stringify({ reference: REFERENCE, layer: '../../../base/x.tar.zst', created: 'x' }),
    );
    expect(findBuiltBase(env, { shippedDir })).toBeUndefined();
  });
});
