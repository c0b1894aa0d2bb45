// Pulls from a real docker-registry on 127.0.0.1 with images built offline by tools/fixtures.
import fs from 'node:fs';
import { NotFoundError } from '@smolvm/common';
import { freePort, startRegistry, type RegistryFixture } from '../../../tools/fixtures/registry';
import { pushTestImages, type TestImages } from '../../../tools/fixtures/images';
import { hostPlatform, ImageNotFoundError, RegistryClient, RegistryConfig, type ImageService, type PullEvent } from '../src';
import { assertStoreVerified, listDir, newService, tempHome, type TempHome } from './helpers/env';

jest.setTimeout(60_000);

let registry: RegistryFixture;
let images: TestImages;
let home: TempHome;
let service: ImageService;

beforeAll(async () => {
  registry = await startRegistry();
  const client = new RegistryClient({ config: RegistryConfig.fromSettings({}) });
  images = await pushTestImages(client, registry.host);
  await client.close();
});
afterAll(async () => {
  await registry?.stop();
});
beforeEach(() => {
  home = tempHome();
  service = newService(home);
});
afterEach(async () => {
  await service.close();
  home.cleanup();
});

describe('pull', () => {
  it('pulls by tag: verified blobs, a record, the image config and progress events', async () => {
    const events: PullEvent[] = [];
    const pulled = await service.pull(images.feature.reference, { onProgress: (e) => events.push(e) });

    expect(pulled.record).toMatchObject({
      reference: images.feature.reference,
      registry: registry.host,
      repository: 'smolvm-test/feature',
      tag: 'latest',
      manifestDigest: images.feature.manifestDigest,
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
    const stored = assertStoreVerified(service);
    for (const d of [pulled.manifest.config.digest, ...pulled.manifest.layers.map((l) => l.digest), images.feature.manifestDigest]) expect(stored).toContain(d);
    expect(listDir(service.store.ingestDir)).toEqual([]);

    const resolved = events.find((e) => e.type === 'resolved');
    expect(resolved?.type === 'resolved' && resolved.blobs.length).toBe(4);
    const total = resolved?.type === 'resolved' ? resolved.totalBytes : -1;
    const last = events.filter((e) => e.type === 'blob-progress').pop();
    expect(last?.type === 'blob-progress' && last.overallTotal).toBe(total);
    expect(events.filter((e) => e.type === 'blob-done')).toHaveLength(4);
    expect(events[events.length - 1]).toEqual({ type: 'done', reference: images.feature.reference, manifestDigest: images.feature.manifestDigest, downloadedBytes: total });

    const again = await service.pull(images.feature.reference);
    expect(again.downloadedBytes).toBe(0);
    expect(service.list()).toHaveLength(1);
  });

  it('pulls by digest and finds the image by that digest afterwards', async () => {
    const ref = `${registry.host}/smolvm-test/feature@${images.feature.manifestDigest}`;
    const pulled = await service.pull(ref);
    expect(pulled.record.reference).toBe(ref);
    expect(pulled.record.digest).toBe(images.feature.manifestDigest);
    expect(service.find(images.feature.manifestDigest)).toHaveLength(1);
    expect(service.inspect(ref).config.user).toBe('1000:1000');
  });

  it('pulls Docker schema 2 manifests and manifest lists', async () => {
    const pulled = await service.pull(images.dockerFormat.reference);
    expect(pulled.manifest.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(pulled.config.entrypoint).toEqual(['/app/hello.sh']);
  });

  it('selects the host platform from an index by default, and arm64 when asked', async () => {
    const host = hostPlatform();
    const byDefault = await service.pull(images.multiarch.reference);
    const expected = host.architecture === 'arm64' ? images.multiarch.arm64 : images.multiarch.amd64;
    expect(byDefault.record.manifestDigest).toBe(expected.manifestDigest);
    expect(byDefault.record.indexDigest).toBe(images.multiarch.indexDigest);

    const arm = await service.pull(images.multiarch.reference, { platform: 'linux/arm64' });
    expect(arm.record.manifestDigest).toBe(images.multiarch.arm64.manifestDigest);
    expect(arm.record.platform).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(arm.config.architecture).toBe('arm64');
    // Both platforms of one reference are kept side by side.
    expect(service.find(images.multiarch.reference)).toHaveLength(2);
    expect(service.find(images.multiarch.reference, 'linux/arm64')).toHaveLength(1);

    await expect(service.pull(images.multiarch.reference, { platform: 'linux/s390x' })).rejects.toThrow(
      `image ${images.multiarch.reference} has no linux/s390x variant (available: linux/amd64, linux/arm64)`,
    );
  });

  it('reports a missing tag as image not found and leaves no record', async () => {
    const ref = `${registry.host}/smolvm-test/feature:nope`;
    await expect(service.pull(ref)).rejects.toThrow(new ImageNotFoundError(`image ${ref} not found`));
    await expect(service.pull(`${registry.host}/smolvm-test/missing-repo:latest`)).rejects.toBeInstanceOf(ImageNotFoundError);
    expect(service.list()).toEqual([]);
  });

  it('names host:port when the registry refuses connections', async () => {
    const port = await freePort();
    await expect(service.pull(`127.0.0.1:${port}/smolvm-test/feature:latest`)).rejects.toThrow(`cannot connect to registry 127.0.0.1:${port}: connection refused`);
  });

  it('pulls through a configured mirror when the registry itself is unreachable', async () => {
    const port = await freePort();
    const mirrored = newService(home, { [`127.0.0.1:${port}`]: { mirrors: [registry.host] } });
    try {
      const pulled = await mirrored.pull(`127.0.0.1:${port}/smolvm-test/feature:latest`);
      expect(pulled.record.manifestDigest).toBe(images.feature.manifestDigest);
      expect(pulled.record.reference).toBe(`127.0.0.1:${port}/smolvm-test/feature:latest`);
    } finally {
      await mirrored.close();
    }
  });
});

describe('local images and gc', () => {
  it('lists, removes and garbage-collects only what no image references', async () => {
    const feature = await service.pull(images.feature.reference);
    const docker = await service.pull(images.dockerFormat.reference);
    const stray = service.store.putBlob(Buffer.from('not referenced by anything'));
    expect(service.list().map((r) => r.reference)).toEqual([images.dockerFormat.reference, images.feature.reference].sort());

    // Within the grace period nothing goes: another process may be mid-pull.
    expect(service.gc().removedBlobs).toEqual([]);

    const removed = service.remove(images.feature.reference);
    expect(removed.map((r) => r.manifestDigest)).toEqual([feature.record.manifestDigest]);
    expect(() => service.remove(images.feature.reference)).toThrow(NotFoundError);

    const result = service.gc({ gracePeriodMs: 0 });
    const removedDigests = result.removedBlobs.map((b) => b.digest).sort();
    const kept = new Set([docker.record.manifestDigest, docker.manifest.config.digest, ...docker.manifest.layers.map((l) => l.digest)]);
    const expectedGone = [stray, feature.record.manifestDigest, feature.manifest.config.digest, ...feature.manifest.layers.map((l) => l.digest)].filter((d) => !kept.has(d));
    expect(removedDigests).toEqual([...new Set(expectedGone)].sort());
    expect(result.freedBytes).toBe(result.removedBlobs.reduce((n, b) => n + b.size, 0));
    const left = assertStoreVerified(service);
    for (const d of kept) expect(left).toContain(d);
    expect(left).toHaveLength(kept.size);
    expect(fs.existsSync(service.store.blobPath(stray))).toBe(false);
  });
});

describe('removeAndCollect', () => {
  it('frees a removed image at once but keeps what other images share and unrelated fresh blobs', async () => {
    const feature = await service.pull(images.feature.reference);
    const docker = await service.pull(images.dockerFormat.reference);
    const stray = service.store.putBlob(Buffer.from('fresh, maybe from a pull in another process'));

    const { removed, gc } = service.removeAndCollect(images.feature.reference);
    expect(removed.map((r) => r.manifestDigest)).toEqual([feature.record.manifestDigest]);

    const kept = new Set([docker.record.manifestDigest, docker.manifest.config.digest, ...docker.manifest.layers.map((l) => l.digest)]);
    const released = [feature.record.manifestDigest, feature.manifest.config.digest, ...feature.manifest.layers.map((l) => l.digest)];
    expect(gc.removedBlobs.map((b) => b.digest).sort()).toEqual([...new Set(released.filter((d) => !kept.has(d)))].sort());
    // Unreferenced but not released by this removal: the grace period still protects it.
    expect(fs.existsSync(service.store.blobPath(stray))).toBe(true);
    for (const d of kept) expect(fs.existsSync(service.store.blobPath(d))).toBe(true);
    expect(() => service.removeAndCollect(images.feature.reference)).toThrow(NotFoundError);
  });
});
