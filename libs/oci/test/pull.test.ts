// Pulls from a real docker-registry on 127.0.0.1 with images built offline by tools/fixtures.
import fs from 'node:fs';
import { NotFoundError } from '@smolvm/common';
import { freePort } from '../../../tools/fixtures/registry';
import { hostPlatform, ImageNotFoundError, type PullEvent } from '../src';
import { assertStoreVerified, listDir, newService, useTestRegistry } from './helpers/env';

jest.setTimeout(60_000);

const t = useTestRegistry();

describe('pull', () => {
  it('pulls by tag: verified blobs, a record, the image config and progress events', async () => {
    const events: PullEvent[] = [];
    const pulled = await t.service.pull(t.images.feature.reference, { onProgress: (e) => events.push(e) });

    expect(pulled.record).toMatchObject({
      reference: t.images.feature.reference,
      registry: t.registry.host,
      repository: 'smolvm-test/feature',
      tag: 'latest',
      manifestDigest: t.images.feature.manifestDigest,
      platform: { os: 'linux', architecture: 'amd64' },
    });
    expect(pulled.config).toMatchObject({
      entrypoint: ['/app/hello.sh'],
      cmd: ['world'],
      env: ['PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'GREETING=hello'],
      workingDir: '/app',
      user: '1000:1000',
      exposedPorts: ['8080/tcp'],
      labels: { 'org.smolvm.test': 'feature' },
    });
    const stored = assertStoreVerified(t.service);
    for (const d of [
      pulled.manifest.config.digest,
      ...pulled.manifest.layers.map((l) => l.digest),
      t.images.feature.manifestDigest,
    ])
      expect(stored).toContain(d);
    expect(listDir(t.service.store.ingestDir)).toEqual([]);

    const resolved = events.find((e) => e.type === 'resolved');
    expect(resolved?.type === 'resolved' && resolved.blobs.length).toBe(4);
    const total = resolved?.type === 'resolved' ? resolved.totalBytes : -1;
    const last = events.filter((e) => e.type === 'blob-progress').pop();
    expect(last?.type === 'blob-progress' && last.overallTotal).toBe(total);
    expect(events.filter((e) => e.type === 'blob-done')).toHaveLength(4);
    expect(events[events.length - 1]).toEqual({
      type: 'done',
      reference: t.images.feature.reference,
      manifestDigest: t.images.feature.manifestDigest,
      downloadedBytes: total,
    });

    const again = await t.service.pull(t.images.feature.reference);
    expect(again.downloadedBytes).toBe(0);
    expect(t.service.list()).toHaveLength(1);
  });

  it('pulls by digest and finds the image by that digest afterwards', async () => {
    const ref = `${t.registry.host}/smolvm-test/feature@${t.images.feature.manifestDigest}`;
    const pulled = await t.service.pull(ref);
    expect(pulled.record.reference).toBe(ref);
    expect(pulled.record.digest).toBe(t.images.feature.manifestDigest);
    expect(t.service.find(t.images.feature.manifestDigest)).toHaveLength(1);
    expect(t.service.inspect(ref).config.user).toBe('1000:1000');
  });

  it('pulls Docker schema 2 manifests and manifest lists', async () => {
    const pulled = await t.service.pull(t.images.dockerFormat.reference);
    expect(pulled.manifest.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(pulled.config.entrypoint).toEqual(['/app/hello.sh']);
  });

  it('selects the host platform from an index by default, and arm64 when asked', async () => {
    const host = hostPlatform();
    const byDefault = await t.service.pull(t.images.multiarch.reference);
    const expected = host.architecture === 'arm64' ? t.images.multiarch.arm64 : t.images.multiarch.amd64;
    expect(byDefault.record.manifestDigest).toBe(expected.manifestDigest);
    expect(byDefault.record.indexDigest).toBe(t.images.multiarch.indexDigest);

    const arm = await t.service.pull(t.images.multiarch.reference, { platform: 'linux/arm64' });
    expect(arm.record.manifestDigest).toBe(t.images.multiarch.arm64.manifestDigest);
    expect(arm.record.platform).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(arm.config.architecture).toBe('arm64');
    // Both platforms of one reference are kept side by side.
    expect(t.service.find(t.images.multiarch.reference)).toHaveLength(2);
    expect(t.service.find(t.images.multiarch.reference, 'linux/arm64')).toHaveLength(1);

    await expect(t.service.pull(t.images.multiarch.reference, { platform: 'linux/s390x' })).rejects.toThrow(
      `image ${t.images.multiarch.reference} has no linux/s390x variant (available: linux/amd64, linux/arm64)`,
    );
  });

  it('reports a missing tag as image not found and leaves no record', async () => {
    const ref = `${t.registry.host}/smolvm-test/feature:nope`;
    await expect(t.service.pull(ref)).rejects.toThrow(new ImageNotFoundError(`image ${ref} not found`));
    await expect(t.service.pull(`${t.registry.host}/smolvm-test/missing-repo:latest`)).rejects.toBeInstanceOf(
      ImageNotFoundError,
    );
    expect(t.service.list()).toEqual([]);
  });

  it('names host:port when the registry refuses connections', async () => {
    const port = await freePort();
    await expect(t.service.pull(`127.0.0.1:${port}/smolvm-test/feature:latest`)).rejects.toThrow(
      `cannot connect to registry 127.0.0.1:${port}: connection refused`,
    );
  });

  it('pulls through a configured mirror when the registry itself is unreachable', async () => {
    const port = await freePort();
    const mirrored = newService(t.home, { [`127.0.0.1:${port}`]: { mirrors: [t.registry.host] } });
    try {
      const pulled = await mirrored.pull(`127.0.0.1:${port}/smolvm-test/feature:latest`);
      expect(pulled.record.manifestDigest).toBe(t.images.feature.manifestDigest);
      expect(pulled.record.reference).toBe(`127.0.0.1:${port}/smolvm-test/feature:latest`);
    } finally {
      await mirrored.close();
    }
  });
});

describe('local images and gc', () => {
  it('lists, removes and garbage-collects only what no image references', async () => {
    const feature = await t.service.pull(t.images.feature.reference);
    const docker = await t.service.pull(t.images.dockerFormat.reference);
    const stray = t.service.store.putBlob(Buffer.from('not referenced by anything'));
    expect(t.service.list().map((r) => r.reference)).toEqual(
      [t.images.dockerFormat.reference, t.images.feature.reference].sort(),
    );

    // Within the grace period nothing goes: another process may be mid-pull.
    expect(t.service.gc().removedBlobs).toEqual([]);

    const removed = t.service.remove(t.images.feature.reference);
    expect(removed.map((r) => r.manifestDigest)).toEqual([feature.record.manifestDigest]);
    expect(() => t.service.remove(t.images.feature.reference)).toThrow(NotFoundError);

    const result = t.service.gc({ gracePeriodMs: 0 });
    const removedDigests = result.removedBlobs.map((b) => b.digest).sort();
    const kept = new Set([
      docker.record.manifestDigest,
      docker.manifest.config.digest,
      ...docker.manifest.layers.map((l) => l.digest),
    ]);
    const expectedGone = [
      stray,
      feature.record.manifestDigest,
      feature.manifest.config.digest,
      ...feature.manifest.layers.map((l) => l.digest),
    ].filter((d) => !kept.has(d));
    expect(removedDigests).toEqual([...new Set(expectedGone)].sort());
    expect(result.freedBytes).toBe(result.removedBlobs.reduce((n, b) => n + b.size, 0));
    const left = assertStoreVerified(t.service);
    for (const d of kept) expect(left).toContain(d);
    expect(left).toHaveLength(kept.size);
    expect(fs.existsSync(t.service.store.blobPath(stray))).toBe(false);
  });
});

describe('removeAndCollect', () => {
  it('frees a removed image at once but keeps what other images share and unrelated fresh blobs', async () => {
    const feature = await t.service.pull(t.images.feature.reference);
    const docker = await t.service.pull(t.images.dockerFormat.reference);
    const stray = t.service.store.putBlob(Buffer.from('fresh, maybe from a pull in another process'));

    const { removed, gc } = t.service.removeAndCollect(t.images.feature.reference);
    expect(removed.map((r) => r.manifestDigest)).toEqual([feature.record.manifestDigest]);

    const kept = new Set([
      docker.record.manifestDigest,
      docker.manifest.config.digest,
      ...docker.manifest.layers.map((l) => l.digest),
    ]);
    const released = [
      feature.record.manifestDigest,
      feature.manifest.config.digest,
      ...feature.manifest.layers.map((l) => l.digest),
    ];
    expect(gc.removedBlobs.map((b) => b.digest).sort()).toEqual(
      [...new Set(released.filter((d) => !kept.has(d)))].sort(),
    );
    // Unreferenced but not released by this removal: the grace period still protects it.
    expect(fs.existsSync(t.service.store.blobPath(stray))).toBe(true);
    for (const d of kept) expect(fs.existsSync(t.service.store.blobPath(d))).toBe(true);
    expect(() => t.service.removeAndCollect(t.images.feature.reference)).toThrow(NotFoundError);
  });
});
