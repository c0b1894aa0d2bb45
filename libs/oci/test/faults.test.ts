// What goes wrong on real networks and busy machines: corrupted bytes, dropped connections,
// downloads left behind by a dead process, and several pulls of one image at once.
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { startRegistry, type RegistryFixture } from '../../../tools/fixtures/registry';
import { featureImage, pushBuiltImage, type BuiltImage, type PushedImage } from '../../../tools/fixtures/images';
import { startProxy, type Proxy } from '../../../tools/fixtures/proxy';
import {
  DigestMismatchError,
  RegistryClient,
  RegistryConfig,
  sha256Digest,
  type ImageRecord,
  type PullEvent,
} from '../src';
import { assertStoreVerified, listDir, newService, tempHome, type TempHome } from './helpers/env';

jest.setTimeout(90_000);

const WORKSPACE = path.resolve(__dirname, '../../..');
let registry: RegistryFixture;
let built: BuiltImage;
let image: PushedImage;
let home: TempHome;
let proxy: Proxy | undefined;

beforeAll(async () => {
  registry = await startRegistry();
  built = featureImage();
  const client = new RegistryClient({ config: RegistryConfig.fromSettings({}) });
  image = await pushBuiltImage(client, `${registry.host}/smolvm-test/feature:latest`, built);
  await client.close();
});
afterAll(async () => {
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

/** The biggest layer (the busybox rootfs), where faults hurt most. */
function bigLayer(): { digest: string; bytes: Buffer } {
  const layer = [...built.layers].sort((a, b) => b.bytes.length - a.bytes.length)[0];
  return { digest: sha256Digest(layer.bytes), bytes: layer.bytes };
}

it('rejects a corrupted blob with a digest mismatch and leaves no trace of it', async () => {
  const corrupt = bigLayer().digest;
  proxy = await startProxy({ target: registry.url, corruptBlob: corrupt });
  const service = newService(home);
  try {
    const pull = service.pull(`${proxy.host}/smolvm-test/feature:latest`);
    await expect(pull).rejects.toBeInstanceOf(DigestMismatchError);
    await expect(pull).rejects.toThrow(
      `blob ${corrupt} of ${proxy.host}/smolvm-test/feature: digest mismatch (expected ${corrupt}, got sha256:`,
    );
    expect(service.list()).toEqual([]);
    const stored = assertStoreVerified(service);
    expect(stored).not.toContain(corrupt);
    // The manifest enters the store only after every blob verified.
    expect(stored).not.toContain(image.manifestDigest);
    // Siblings stopped midway may leave resumable partials; the corrupt blob leaves none.
    expect(listDir(service.store.ingestDir).filter((n) => n.startsWith(corrupt.slice(7)))).toEqual([]);
  } finally {
    await service.close();
  }
});

it('resumes a download cut mid-blob with a Range request and verifies the result', async () => {
  const layer = bigLayer();
  const cutAt = Math.floor(layer.bytes.length / 3);
  proxy = await startProxy({ target: registry.url, cutBlobOnce: { digest: layer.digest, afterBytes: cutAt } });
  const service = newService(home);
  const events: PullEvent[] = [];
  try {
    const pulled = await service.pull(`${proxy.host}/smolvm-test/feature:latest`, {
      onProgress: (e) => events.push(e),
    });
    expect(pulled.record.manifestDigest).toBe(image.manifestDigest);
    expect(fs.readFileSync(service.store.blobPath(layer.digest)).equals(layer.bytes)).toBe(true);
    assertStoreVerified(service);
  } finally {
    await service.close();
  }
  const gets = proxy.requests.filter((r) => r.method === 'GET' && r.path.endsWith(layer.digest));
  expect(gets).toHaveLength(2);
  expect(gets[0].range).toBeUndefined();
  const resumedAt = Number(/^bytes=(\d+)-$/.exec(gets[1].range ?? '')?.[1]);
  expect(resumedAt).toBeGreaterThan(0);
  expect(resumedAt).toBeLessThanOrEqual(cutAt);
  expect(events.some((e) => e.type === 'blob-retry' && e.digest === layer.digest)).toBe(true);
});

it('resumes a partial download left behind by a process that died', async () => {
  const layer = bigLayer();
  const service = newService(home);
  const dead = spawnSync('true').pid as number;
  const have = Math.floor(layer.bytes.length / 2);
  fs.mkdirSync(service.store.ingestDir, { recursive: true });
  fs.writeFileSync(
    path.join(service.store.ingestDir, `${layer.digest.slice(7)}.${dead}-1-0badc0de.partial`),
    layer.bytes.subarray(0, have),
  );
  proxy = await startProxy({ target: registry.url });
  const events: PullEvent[] = [];
  try {
    await service.pull(`${proxy.host}/smolvm-test/feature:latest`, { onProgress: (e) => events.push(e) });
    assertStoreVerified(service);
    expect(fs.readFileSync(service.store.blobPath(layer.digest)).equals(layer.bytes)).toBe(true);
  } finally {
    await service.close();
  }
  const get = proxy.requests.find((r) => r.method === 'GET' && r.path.endsWith(layer.digest));
  expect(get?.range).toBe(`bytes=${have}-`);
  expect(events).toContainEqual({
    type: 'blob-start',
    digest: layer.digest,
    size: layer.bytes.length,
    resumedFrom: have,
  });
  expect(listDir(path.join(home.home, 'cache', 'oci', 'ingest'))).toEqual([]);
});

it('starts over when a resumed partial turns out to be garbage, without storing it', async () => {
  const layer = bigLayer();
  const service = newService(home);
  const dead = spawnSync('true').pid as number;
  const garbage = Buffer.from(layer.bytes.subarray(0, 1000));
  garbage[10] ^= 0xff;
  fs.mkdirSync(service.store.ingestDir, { recursive: true });
  fs.writeFileSync(path.join(service.store.ingestDir, `${layer.digest.slice(7)}.${dead}-1-0badc0de.partial`), garbage);
  try {
    await expect(service.pull(image.reference)).rejects.toBeInstanceOf(DigestMismatchError);
    expect(assertStoreVerified(service)).not.toContain(layer.digest);
    expect(listDir(service.store.ingestDir).filter((n) => n.startsWith(layer.digest.slice(7)))).toEqual([]);
    // The bad partial is gone, so the next pull downloads cleanly and resumes any sibling it stopped.
    await service.pull(image.reference);
    assertStoreVerified(service);
    expect(listDir(service.store.ingestDir)).toEqual([]);
  } finally {
    await service.close();
  }
});

it('two processes pulling the same image at once end with one valid store', async () => {
  const run = promisify(execFile);
  const child = () =>
    run(
      process.execPath,
      [path.join(WORKSPACE, 'tools/run-ts.mjs'), path.join(__dirname, 'helpers/pull-child.ts'), image.reference],
      {
        env: { ...process.env, SMOLVM_HOME: home.home },
        cwd: WORKSPACE,
      },
    );
  const [a, b] = await Promise.all([child(), child()]);
  const records = [a.stdout, b.stdout].map((out) => JSON.parse(out) as ImageRecord);
  expect(records.map((r) => r.manifestDigest)).toEqual([image.manifestDigest, image.manifestDigest]);

  const service = newService(home);
  try {
    expect(service.list().map((r) => r.manifestDigest)).toEqual([image.manifestDigest]);
    const stored = assertStoreVerified(service);
    expect(stored.sort()).toEqual(
      [image.manifestDigest, sha256Digest(built.config), ...built.layers.map((l) => sha256Digest(l.bytes))].sort(),
    );
    expect(listDir(service.store.ingestDir)).toEqual([]);
    expect(listDir(service.store.imagesDir).filter((n) => n.startsWith('.'))).toEqual([]);
  } finally {
    await service.close();
  }
});

it('two stores in one process pulling the same image in parallel do not collide', async () => {
  const one = newService(home);
  const two = newService(home);
  try {
    const results = await Promise.all([one.pull(image.reference), two.pull(image.reference)]);
    expect(results.map((r) => r.record.manifestDigest)).toEqual([image.manifestDigest, image.manifestDigest]);
    expect(one.list()).toHaveLength(1);
    assertStoreVerified(one);
    expect(listDir(one.store.ingestDir)).toEqual([]);
  } finally {
    await one.close();
    await two.close();
  }
});
