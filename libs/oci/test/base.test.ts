// The base image of bare VMs: the set-up's tar imported into the store as an ordinary image
// (listed, prepared into an erofs, the same digest on every import), found through a custom
// SMOLVM_HOME like the kernel, and refused when another user could have written it.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { NotFoundError } from '@smolvm/common';
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

/** What tools/base/build leaves in `<cache>/base/`: a zstd tar and its record. */
function writeBuiltBase(cache: string): string {
  const dir = path.join(cache, 'base');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(cache, 0o700);
  const tar = tarEntries([
    { path: 'usr', type: 'dir' },
    { path: 'usr/local', type: 'dir' },
    { path: 'usr/local/bin', type: 'dir' },
    { path: 'etc', type: 'dir' },
    { path: 'etc/debian_version', type: 'file', content: '12.99\n' },
  ]);
  const zst = spawnSync('zstd', ['-q', '-c'], { input: tar });
  if (zst.status !== 0) throw new Error('zstd failed');
  fs.writeFileSync(path.join(dir, 'debian-0123456789abcdef.tar.zst'), zst.stdout, { mode: 0o600 });
  const record = path.join(dir, 'base.json');
  fs.writeFileSync(record, JSON.stringify({ format: 1, recipe: '0123456789abcdef', reference: REFERENCE, layer: 'debian-0123456789abcdef.tar.zst', created: '2026-01-01T00:00:00Z' }), { mode: 0o600 });
  return record;
}

it('imports the built base as a one-layer image: listed, prepared, the same digest on every import', async () => {
  writeBuiltBase(path.join(home.home, 'cache'));
  const service = newService(home);
  try {
    expect(await ensureBuiltBase(service.store, home.env)).toBe(REFERENCE);
    const [record] = service.list();
    expect(record).toMatchObject({ reference: REFERENCE, registry: 'smolvm.internal', repository: 'base', tag: 'debian-bookworm-0123456789abcdef' });
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
    await expect(ensureBuiltBase(service.store, env)).rejects.toMatchObject({ remedy: expect.stringMatching(/tools\/setup.*base_image.*SMOLVM_BASE_IMAGE/) });
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
    fs.writeFileSync(record, JSON.stringify({ reference: 'docker.io/library/alpine:3', layer: 'debian-0123456789abcdef.tar.zst', created: 'x' }));
    expect(findBuiltBase(env)).toBeUndefined();
  } finally {
    await service.close();
  }
  expect(isBuiltBaseReference(REFERENCE)).toBe(true);
  expect(isBuiltBaseReference('smolvm.internal/base:x@sha256:00')).toBe(false);
});
