// prepareImage: pull if needed, then one erofs image per manifest digest, built by the real
// writer and checked with fsck.erofs (erofs-utils).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { NotFoundError } from '@smolvm/common';
import { formatPlatform, hostPlatform, type BuildErofs } from '../src';
import { listDir, newService, startRegistryWithImages, useTestRegistry } from './helpers/env';

jest.setTimeout(90_000);

const t = useTestRegistry();

/** fsck.erofs checks every file's encoding while extracting the tree for us to look at. */
function fsckExtract(file: string, into: string): { status: number | null; output: string } {
  const out = spawnSync('fsck.erofs', [`--extract=${into}`, '--force', '--overwrite', file], { encoding: 'utf8' });
  if (out.error) throw out.error;
  return { status: out.status, output: out.stdout + out.stderr };
}

it('pulls and converts an image into an erofs image that fsck.erofs accepts', async () => {
  const prepared = await t.service.prepare(t.images.feature.reference);
  expect(prepared.pulled).toBe(true);
  expect(prepared.manifestDigest).toBe(t.images.feature.manifestDigest);
  expect(prepared.erofsPath).toBe(t.service.store.erofsPath(t.images.feature.manifestDigest));
  expect(prepared.config.entrypoint).toEqual(['/app/hello.sh']);
  const tree = path.join(t.home.home, 'tree');
  const check = fsckExtract(prepared.erofsPath, tree);
  expect(check.output).not.toMatch(/error|corrupt/i);
  expect(check.status).toBe(0);
  // Layers were applied in manifest order: whiteouts and the opaque dir hide lower files.
  expect(fs.readFileSync(path.join(tree, 'app/hello.sh'), 'utf8')).toContain('GREETING');
  expect(fs.existsSync(path.join(tree, 'etc/removed-later'))).toBe(false);
  expect(fs.existsSync(path.join(tree, 'var/cache/stale-top'))).toBe(false);
  expect(fs.readFileSync(path.join(tree, 'var/cache/fresh'), 'utf8')).toBe('after the opaque dir\n');
  expect(fs.readFileSync(path.join(tree, 'opt/data/hard'), 'utf8')).toBe('data a\n');
  expect(fs.readlinkSync(path.join(tree, 'opt/link-relative'))).toBe('data/a');
  expect(fs.statSync(prepared.erofsPath).size % 4096).toBe(0);
  expect(listDir(t.service.store.erofsDir)).toEqual([`${t.images.feature.manifestDigest.slice(7)}.erofs`]);
});

it('reuses the store and the erofs image, and prepares by digest without a registry', async () => {
  let builds = 0;
  const counting: BuildErofs = async (layers, out) => {
    builds++;
    fs.writeFileSync(out, `fake erofs of ${layers.length} layers`);
  };
  const first = await t.service.prepare(t.images.feature.reference, { buildErofs: counting });
  const again = await t.service.prepare(t.images.feature.reference, { buildErofs: counting });
  expect(again.pulled).toBe(false);
  expect(again.erofsPath).toBe(first.erofsPath);
  expect(builds).toBe(1);

  await t.registry.stop();
  try {
    const byDigest = await t.service.prepare(
      `${t.registry.host}/smolvm-test/feature@${t.images.feature.manifestDigest}`,
      { buildErofs: counting },
    );
    expect(byDigest.erofsPath).toBe(first.erofsPath);
    expect(builds).toBe(1);
  } finally {
    // The storage dir went with the old registry; later tests get a fresh one with fresh images.
    Object.assign(t, await startRegistryWithImages());
  }
});

// Issue 14, item 7: the erofs image is what the VM boots for that digest.
it('refuses a prepared image another user could have written', async () => {
  const prepared = await t.service.prepare(t.images.feature.reference);
  expect((fs.statSync(prepared.erofsPath).mode & 0o777).toString(8)).toBe('400');
  fs.chmodSync(prepared.erofsPath, 0o646);
  await expect(t.service.prepare(t.images.feature.reference)).rejects.toThrow(
    /^refusing .*\.erofs: it is writable by other users \(mode 646\)$/,
  );
  fs.chmodSync(prepared.erofsPath, 0o400);
  await expect(t.service.prepare(t.images.feature.reference)).resolves.toMatchObject({ erofsPath: prepared.erofsPath });
});

it("with pull 'never' uses only the local store", async () => {
  const err = await t.service.prepare(t.images.feature.reference, { pull: 'never' }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(NotFoundError);
  expect((err as NotFoundError).message).toBe(
    `image ${t.images.feature.reference} (${formatPlatform(hostPlatform())}) is not in the local store`,
  );
  expect((err as NotFoundError).remedy).toBe(`pull it first with 'smolvm image pull ${t.images.feature.reference}'`);
  expect(t.service.list()).toEqual([]);
});

it('concurrent prepares of one image end with one complete erofs file', async () => {
  const slow: BuildErofs = async (layers, out) => {
    await new Promise((r) => setTimeout(r, 50));
    fs.writeFileSync(out, `erofs of ${layers.length} layers`);
  };
  const other = newService(t.home);
  try {
    const results = await Promise.all([
      t.service.prepare(t.images.feature.reference, { buildErofs: slow }),
      t.service.prepare(t.images.feature.reference, { buildErofs: slow }),
      other.prepare(t.images.feature.reference, { buildErofs: slow }),
    ]);
    expect(new Set(results.map((r) => r.erofsPath)).size).toBe(1);
    expect(fs.readFileSync(results[0].erofsPath, 'utf8')).toBe('erofs of 3 layers');
    // Only the finished file remains: no temp files of either builder.
    expect(listDir(t.service.store.erofsDir)).toEqual([`${t.images.feature.manifestDigest.slice(7)}.erofs`]);
  } finally {
    await other.close();
  }
});

it('a failed build leaves no erofs file behind, and gc removes erofs images of removed images', async () => {
  const failing: BuildErofs = async (_layers, out) => {
    fs.writeFileSync(out, 'half');
    throw new Error('disk full');
  };
  await expect(t.service.prepare(t.images.feature.reference, { buildErofs: failing })).rejects.toThrow('disk full');
  expect(listDir(t.service.store.erofsDir)).toEqual([]);

  const ok: BuildErofs = async (_layers, out) => fs.writeFileSync(out, 'ok');
  const prepared = await t.service.prepare(t.images.feature.reference, { buildErofs: ok });
  expect(t.service.gc({ gracePeriodMs: 0 }).removedErofs).toEqual([]);
  t.service.remove(t.images.feature.reference);
  const result = t.service.gc({ gracePeriodMs: 0 });
  expect(result.removedErofs).toEqual([{ manifestDigest: prepared.manifestDigest, size: 2 }]);
  expect(fs.existsSync(prepared.erofsPath)).toBe(false);
  expect(listDir(t.service.store.blobsDir)).toEqual([]);
});
