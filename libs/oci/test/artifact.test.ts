// OCI artifacts against Debian's docker-registry: push streams sections from one file, the
// registry keeps OCI content types, an index keyed by platform, shared blobs are never sent twice
// (HEAD in the same repository, a cross-repository mount in another), and a pull into a clean
// store gets every byte back, verified.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { parseImageReference } from '@smolvm/config';
import { startRegistry, type RegistryFixture } from '../../../tools/fixtures/registry';
import { featureImage, pushBuiltImage } from '../../../tools/fixtures/images';
import { startProxy, type Proxy, type ProxyRequest } from '../../../tools/fixtures/proxy';
import {
  BlobLocations,
  ContentStore,
  MACHINE_ARTIFACT_TYPE,
  MediaType,
  RegistryAuthError,
  RegistryClient,
  RegistryConfig,
  pullArtifact,
  pushArtifact,
  sha256Digest,
  type ArtifactToPush,
} from '../src';
import { tempHome, type TempHome } from './helpers/env';

jest.setTimeout(120_000);

const CONFIG_TYPE = 'application/vnd.smolvm.machine.manifest.v1+json';
const SECTION_TYPE = (name: string): string => `application/vnd.smolvm.machine.section.${name}.v1`;

interface Section {
  name: string;
  bytes: Buffer;
}

/** A file of sections back to back, as a pack holds them; layers stream from it by offset. */
function artifactFile(
  dir: string,
  name: string,
  sections: Section[],
  platform: string,
): { file: string; artifact: ArtifactToPush } {
  const file = path.join(dir, name);
  fs.writeFileSync(file, Buffer.concat(sections.map((s) => s.bytes)));
  let offset = 0;
  const layers = sections.map((s) => {
    const base = offset;
    offset += s.bytes.length;
    return {
      mediaType: SECTION_TYPE(s.name),
      digest: sha256Digest(s.bytes),
      size: s.bytes.length,
      annotations: { 'org.opencontainers.image.title': s.name },
      open: (start = 0, end = s.bytes.length - 1) =>
        fs.createReadStream(file, { start: base + start, end: base + end }),
    };
  });
  const [os, architecture] = platform.split('/');
  const config = Buffer.from(JSON.stringify({ name, platform, sections: sections.map((s) => s.name) }));
  return {
    file,
    artifact: {
      artifactType: MACHINE_ARTIFACT_TYPE,
      config: { mediaType: CONFIG_TYPE, bytes: config },
      layers,
      platform: { os, architecture },
    },
  };
}

/** Raw GET with an Accept header: what the registry stored, as it labels it. */
function rawGet(url: string, accept: string): Promise<{ status: number; contentType?: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers: { accept } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            contentType: res.headers['content-type'],
            body: Buffer.concat(chunks),
          }),
        );
      })
      .on('error', reject);
  });
}

/** Requests that sent a blob's bytes: a monolithic PUT with the digest, or any PATCH. */
function uploadsOf(requests: ProxyRequest[], digest: string): ProxyRequest[] {
  return requests.filter(
    (r) =>
      r.method === 'PUT' &&
      r.path.includes('/blobs/uploads/') &&
      r.path.includes(`digest=${encodeURIComponent(digest)}`),
  );
}

const kernel = crypto.randomBytes(200_000);
const agent = crypto.randomBytes(150_000);

let registry: RegistryFixture;
let proxy: Proxy;
let home: TempHome;
let client: RegistryClient;
let work: TempHome;

beforeAll(async () => {
  registry = await startRegistry();
  proxy = await startProxy({ target: registry.url });
  work = tempHome();
});
afterAll(async () => {
  await proxy?.close();
  await registry?.stop();
  work?.cleanup();
});
beforeEach(() => {
  home = tempHome();
  client = new RegistryClient({ config: RegistryConfig.fromSettings({}), retry: { backoffMs: 20 } });
});
afterEach(async () => {
  await client.close();
  home.cleanup();
});

it('pushes an artifact as an OCI manifest in an index keyed by platform, and pulls it back byte for byte', async () => {
  const rootfs = crypto.randomBytes(700_000);
  const { artifact } = artifactFile(
    work.home,
    'one.bin',
    [
      { name: 'kernel', bytes: kernel },
      { name: 'agent', bytes: agent },
      { name: 'rootfs', bytes: rootfs },
    ],
    'linux/amd64',
  );
  // Chunked, so the PATCH path streams from file offsets too.
  const pushed = await pushArtifact(client, `${registry.host}/smolvm-test/app-one:v1`, artifact, {
    chunkSize: 256 * 1024,
  });
  expect(pushed.reference).toBe(`${registry.host}/smolvm-test/app-one:v1`);
  expect(pushed.blobs.map((b) => b.outcome)).toEqual(['uploaded', 'uploaded', 'uploaded', 'uploaded']);
  expect(pushed.uploadedBytes).toBe(artifact.config.bytes.length + kernel.length + agent.length + rootfs.length);

  // The registry labels what it serves with the exact OCI types it was given.
  const top = await rawGet(`${registry.url}/v2/smolvm-test/app-one/manifests/v1`, MediaType.OciIndex);
  expect(top.status).toBe(200);
  expect(top.contentType).toBe(MediaType.OciIndex);
  expect(sha256Digest(top.body)).toBe(pushed.index.digest);
  const index = JSON.parse(top.body.toString()) as { manifests: Array<Record<string, unknown>> };
  expect(index.manifests).toEqual([
    {
      mediaType: MediaType.OciManifest,
      digest: pushed.manifest.digest,
      size: pushed.manifest.size,
      platform: { os: 'linux', architecture: 'amd64' },
      artifactType: MACHINE_ARTIFACT_TYPE,
    },
  ]);
  const one = await rawGet(
    `${registry.url}/v2/smolvm-test/app-one/manifests/${pushed.manifest.digest}`,
    MediaType.OciManifest,
  );
  expect(one.contentType).toBe(MediaType.OciManifest);
  const manifest = JSON.parse(one.body.toString()) as {
    artifactType: string;
    config: { mediaType: string };
    layers: Array<{ mediaType: string; digest: string }>;
  };
  expect(manifest.artifactType).toBe(MACHINE_ARTIFACT_TYPE);
  expect(manifest.config.mediaType).toBe(CONFIG_TYPE);
  expect(manifest.layers.map((l) => l.mediaType)).toEqual(['kernel', 'agent', 'rootfs'].map(SECTION_TYPE));

  const store = ContentStore.open(home.env);
  const pulled = await pullArtifact(client, store, `${registry.host}/smolvm-test/app-one:v1`, {
    artifactType: MACHINE_ARTIFACT_TYPE,
    platform: 'linux/amd64',
  });
  expect(pulled.manifestDigest).toBe(pushed.manifest.digest);
  expect(pulled.indexDigest).toBe(pushed.index.digest);
  expect(pulled.config.equals(artifact.config.bytes)).toBe(true);
  // Digests, not buffers: jest compares buffers byte by byte, for seconds.
  expect(pulled.layers.map((l) => sha256Digest(fs.readFileSync(l.path)))).toEqual(
    [kernel, agent, rootfs].map((b) => sha256Digest(b)),
  );
  expect(pulled.layers[2].annotations).toEqual({ 'org.opencontainers.image.title': 'rootfs' });
  expect(pulled.downloadedBytes).toBe(pushed.uploadedBytes);
  expect(fs.statSync(pulled.layers[0].path).mode & 0o777).toBe(0o400);

  // By digest, the index resolves again; everything is cached now.
  const again = await pullArtifact(client, store, `${registry.host}/smolvm-test/app-one@${pushed.index.digest}`, {
    artifactType: MACHINE_ARTIFACT_TYPE,
    platform: 'linux/amd64',
  });
  expect(again.downloadedBytes).toBe(0);
  expect(again.manifestDigest).toBe(pushed.manifest.digest);
});

it('sends shared blobs once: HEAD finds them in the same repository, a mount links them into another', async () => {
  const locations = new BlobLocations(ContentStore.open(home.env));
  const via = (repo: string): string => `${proxy.host}/smolvm-test/${repo}`;
  const first = artifactFile(
    work.home,
    'a.bin',
    [
      { name: 'kernel', bytes: kernel },
      { name: 'agent', bytes: agent },
      { name: 'rootfs', bytes: crypto.randomBytes(100_000) },
    ],
    'linux/amd64',
  ).artifact;
  const second = artifactFile(
    work.home,
    'b.bin',
    [
      { name: 'kernel', bytes: kernel },
      { name: 'agent', bytes: agent },
      { name: 'rootfs', bytes: crypto.randomBytes(120_000) },
    ],
    'linux/amd64',
  ).artifact;
  proxy.requests.length = 0;

  const a = await pushArtifact(client, `${via('shared-a')}:v1`, first, { locations });
  expect(a.blobs.map((b) => b.outcome)).toEqual(['uploaded', 'uploaded', 'uploaded', 'uploaded']);
  const sameRepo = await pushArtifact(client, `${via('shared-a')}:v2`, second, { locations });
  expect(sameRepo.blobs.map((b) => b.outcome)).toEqual(['uploaded', 'existed', 'existed', 'uploaded']);
  const otherRepo = await pushArtifact(client, `${via('shared-b')}:v1`, second, { locations });
  expect(otherRepo.blobs.map((b) => b.outcome)).toEqual(['mounted', 'mounted', 'mounted', 'mounted']);
  expect(otherRepo.uploadedBytes).toBe(0);

  // What the registry received: the kernel and agent bytes exactly once, whatever the repository.
  for (const digest of [sha256Digest(kernel), sha256Digest(agent)]) {
    expect(uploadsOf(proxy.requests, digest)).toHaveLength(1);
    expect(proxy.requests.filter((r) => r.method === 'PATCH')).toHaveLength(0);
    expect(
      proxy.requests.filter((r) => r.method === 'POST' && r.path.includes(`mount=${encodeURIComponent(digest)}`)),
    ).toHaveLength(1);
  }

  // The mounted copy is whole: a clean store pulls it from shared-b.
  const pulled = await pullArtifact(
    client,
    ContentStore.open(tempHomeFor(home, 'clean').env),
    `${via('shared-b')}:v1`,
    { artifactType: MACHINE_ARTIFACT_TYPE, platform: 'linux/amd64' },
  );
  expect(fs.readFileSync(pulled.layers[0].path).equals(kernel)).toBe(true);
});

it('keeps one index entry per platform under a tag: a new platform is added, the same platform replaced', async () => {
  const ref = `${registry.host}/smolvm-test/multi:latest`;
  const amd = artifactFile(
    work.home,
    'amd.bin',
    [{ name: 'rootfs', bytes: Buffer.from('amd64 v1') }],
    'linux/amd64',
  ).artifact;
  const arm = artifactFile(
    work.home,
    'arm.bin',
    [{ name: 'rootfs', bytes: Buffer.from('arm64') }],
    'linux/arm64',
  ).artifact;
  const amd2 = artifactFile(
    work.home,
    'amd2.bin',
    [{ name: 'rootfs', bytes: Buffer.from('amd64 v2') }],
    'linux/amd64',
  ).artifact;
  await pushArtifact(client, ref, amd);
  await pushArtifact(client, ref, arm);
  const last = await pushArtifact(client, ref, amd2);

  const index = JSON.parse(
    (await rawGet(`${registry.url}/v2/smolvm-test/multi/manifests/latest`, MediaType.OciIndex)).body.toString(),
  ) as {
    manifests: Array<{ platform: { architecture: string }; digest: string }>;
  };
  expect(index.manifests.map((m) => m.platform.architecture).sort()).toEqual(['amd64', 'arm64']);
  expect(index.manifests.find((m) => m.platform.architecture === 'amd64')?.digest).toBe(last.manifest.digest);

  const store = ContentStore.open(home.env);
  const pullFor = async (platform: string): Promise<string> => {
    const pulled = await pullArtifact(client, store, ref, { artifactType: MACHINE_ARTIFACT_TYPE, platform });
    expect(pulled.platform?.architecture).toBe(platform.split('/')[1]);
    return fs.readFileSync(pulled.layers[0].path, 'utf8');
  };
  expect(await pullFor('linux/arm64')).toBe('arm64');
  expect(await pullFor('linux/amd64')).toBe('amd64 v2');
  await expect(
    pullArtifact(client, store, ref, { artifactType: MACHINE_ARTIFACT_TYPE, platform: 'linux/riscv64' }),
  ).rejects.toThrow(`${ref} has no linux/riscv64 variant (available: `);
});

it('refuses to pull a container image as an artifact, and to push to a digest', async () => {
  await pushBuiltImage(client, `${registry.host}/smolvm-test/feature:latest`, featureImage());
  const store = ContentStore.open(home.env);
  await expect(
    pullArtifact(client, store, `${registry.host}/smolvm-test/feature:latest`, { artifactType: MACHINE_ARTIFACT_TYPE }),
  ).rejects.toThrow(
    `${registry.host}/smolvm-test/feature:latest is a container image, not an artifact of type ${MACHINE_ARTIFACT_TYPE}`,
  );
  const { artifact } = artifactFile(work.home, 'd.bin', [{ name: 'rootfs', bytes: Buffer.from('x') }], 'linux/amd64');
  await expect(
    pushArtifact(client, parseImageReference(`${registry.host}/smolvm-test/d@sha256:${'a'.repeat(64)}`), artifact),
  ).rejects.toThrow('a push needs a tag, not a digest');
});

describe('with token authentication', () => {
  let tokenRegistry: RegistryFixture;
  beforeAll(async () => {
    tokenRegistry = await startRegistry({ auth: 'token' });
  });
  afterAll(async () => {
    await tokenRegistry?.stop();
  });

  it('pushes and mounts with credentials from registries.toml; anonymous pushes are refused', async () => {
    const { artifact } = artifactFile(work.home, 't.bin', [{ name: 'kernel', bytes: kernel }], 'linux/amd64');
    const anonymous = await pushArtifact(client, `${tokenRegistry.host}/team/app:v1`, artifact).catch(
      (e: unknown) => e,
    );
    expect(anonymous).toBeInstanceOf(RegistryAuthError);

    const authed = new RegistryClient({
      config: RegistryConfig.fromSettings({
        [tokenRegistry.host]: { username: 'smolvm', password: 'smolvm-password' },
      }),
    });
    const locations = new BlobLocations(ContentStore.open(home.env));
    try {
      await pushArtifact(authed, `${tokenRegistry.host}/team/app:v1`, artifact, { locations });
      const mounted = await pushArtifact(authed, `${tokenRegistry.host}/team/other:v1`, artifact, { locations });
      expect(mounted.blobs.map((b) => b.outcome)).toEqual(['mounted', 'mounted']);
      const pulled = await pullArtifact(client, ContentStore.open(home.env), `${tokenRegistry.host}/team/other:v1`, {
        artifactType: MACHINE_ARTIFACT_TYPE,
        platform: 'linux/amd64',
      });
      expect(fs.readFileSync(pulled.layers[0].path).equals(kernel)).toBe(true);
    } finally {
      await authed.close();
    }
  });
});

/** A second home inside `home` (removed with it). */
function tempHomeFor(home: TempHome, name: string): TempHome {
  const dir = path.join(home.home, name);
  fs.mkdirSync(dir);
  return {
    home: dir,
    env: { SMOLVM_HOME: dir, HOME: dir },
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
