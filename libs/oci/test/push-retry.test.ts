// Push paths (monolithic and chunked uploads) and retries of transient registry failures.
import crypto from 'node:crypto';
import { startRegistry, type RegistryFixture } from '../../../tools/fixtures/registry';
import { featureImage, pushBuiltImage } from '../../../tools/fixtures/images';
import { startProxy, type Proxy } from '../../../tools/fixtures/proxy';
import {
  MediaType,
  pushBlob,
  pushImage,
  RegistryClient,
  RegistryConfig,
  RetryableError,
  sha256Digest,
  type PullEvent,
} from '../src';
import { parseImageReference } from '@smolvm/config';
import { assertStoreVerified, newService, tempHome, type TempHome } from './helpers/env';

jest.setTimeout(60_000);

let registry: RegistryFixture;
let client: RegistryClient;
let home: TempHome;
let proxy: Proxy | undefined;

beforeAll(async () => {
  registry = await startRegistry();
  client = new RegistryClient({ config: RegistryConfig.fromSettings({}) });
});
afterAll(async () => {
  await client?.close();
  await registry?.stop();
});
beforeEach(() => {
  home = tempHome();
});
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  home.cleanup();
});

it('pushes blobs in PATCH chunks and the image pulls back intact', async () => {
  const ref = parseImageReference(`${registry.host}/smolvm-test/chunked:latest`);
  const layer = crypto.randomBytes(300_000);
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: [sha256Digest(layer)] },
    }),
  );
  proxy = await startProxy({ target: registry.url });
  const viaProxy = { ...ref, registry: proxy.host };
  const proxied = new RegistryClient({ config: RegistryConfig.fromSettings({}) });
  try {
    const first = await pushBlob(proxied, viaProxy, layer, { chunkSize: 64 * 1024 });
    expect(first).toEqual({ digest: sha256Digest(layer), size: layer.length, outcome: 'uploaded' });
    expect(proxy.requests.filter((r) => r.method === 'PATCH')).toHaveLength(5);
    // A second push finds the blob and uploads nothing.
    expect((await pushBlob(proxied, viaProxy, layer, { chunkSize: 64 * 1024 })).outcome).toBe('existed');
  } finally {
    await proxied.close();
  }
  const manifest = await pushImage(client, ref, { config, layers: [{ bytes: layer, mediaType: MediaType.OciLayer }] });
  const service = newService(home);
  try {
    const pulled = await service.pull(`${registry.host}/smolvm-test/chunked:latest`);
    expect(pulled.record.manifestDigest).toBe(manifest.digest);
    expect(assertStoreVerified(service)).toContain(sha256Digest(layer));
  } finally {
    await service.close();
  }
});

it('retries 503s on manifests and blobs with backoff and then succeeds', async () => {
  await pushBuiltImage(client, `${registry.host}/smolvm-test/feature:latest`, featureImage());
  proxy = await startProxy({ target: registry.url, fail: { match: /\/(manifests|blobs)\//, status: 503, times: 3 } });
  const service = newService(home);
  const events: PullEvent[] = [];
  try {
    const pulled = await service.pull(`${proxy.host}/smolvm-test/feature:latest`, {
      onProgress: (e) => events.push(e),
    });
    expect(pulled.manifest.layers).toHaveLength(3);
    assertStoreVerified(service);
  } finally {
    await service.close();
  }
  expect(proxy.requests.filter((r) => /\/(manifests|blobs)\//.test(r.path)).length).toBeGreaterThanOrEqual(3 + 5);
});

it('gives up on a registry that keeps failing, naming the status, and stores nothing', async () => {
  await pushBuiltImage(client, `${registry.host}/smolvm-test/feature:latest`, featureImage());
  proxy = await startProxy({ target: registry.url, fail: { match: /\/blobs\//, status: 500, times: Infinity } });
  const service = newService(home);
  try {
    const err = await service.pull(`${proxy.host}/smolvm-test/feature:latest`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetryableError);
    expect((err as Error).message).toMatch(
      new RegExp(
        `^fetching blob sha256:[a-f0-9]{64}: ${proxy.host.replace(/\./g, '\\.')} answered HTTP 500 \\(injected failure\\)$`,
      ),
    );
    expect(service.list()).toEqual([]);
  } finally {
    await service.close();
  }
});
