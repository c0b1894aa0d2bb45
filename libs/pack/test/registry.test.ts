// Packs through Debian's docker-registry: pushed as OCI artifacts (sections stream from the file),
// shared kernel/agent blobs sent once, pulled into a clean cache and reassembled into the same
// pack; forged artifacts (section table or platform that do not match) are refused.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { NotFoundError, smolvmDirs } from '@smolvm/common';
import { MACHINE_ARTIFACT_TYPE, RegistryClient, RegistryConfig, pushArtifact, type ArtifactLayer } from '@smolvm/oci';
import { startRegistry, type RegistryFixture } from '../../../tools/fixtures/registry';
import { startProxy, type Proxy, type ProxyRequest } from '../../../tools/fixtures/proxy';
import {
  PACK_MANIFEST_MEDIA_TYPE,
  PackFile,
  PackFormatError,
  RUNTIME_MEDIA_TYPE,
  SECTION_ALIGN,
  assemblePack,
  isPackReference,
  pullPack,
  pulledPackPath,
  pushPack,
  resolvePackSource,
  runtimeDisk,
  type PackManifestBase,
  type SectionName,
} from '../src';
import { testManifest } from './helpers/manifest';

jest.setTimeout(120_000);

const base = testManifest({
  platform: 'linux/amd64',
  host_platform: 'linux/amd64',
  env: ['PATH=/usr/bin:/bin'],
  cpus: 4,
  memory_mib: 8192,
});

const kernel = crypto.randomBytes(9000);
const agent = crypto.randomBytes(20_000);

async function makePack(file: string, rootfs: Buffer, manifest: Partial<PackManifestBase> = {}): Promise<PackFile> {
  const content: Record<string, Buffer> = { kernel, agent, rootfs };
  await assemblePack({
    output: file,
    manifest: { ...base, ...manifest },
    sections: (['kernel', 'agent', 'rootfs'] as SectionName[]).map((name) => ({
      name,
      open: () => Readable.from([content[name]]),
      // As `pack create` stores it: a pull must write it back compressed, byte for byte.
      ...(name === 'kernel' ? { compress: 'gzip' as const } : {}),
    })),
  });
  return PackFile.open(file);
}

function uploadsOf(requests: ProxyRequest[], digest: string): ProxyRequest[] {
  return requests.filter(
    (r) =>
      r.method === 'PUT' &&
      r.path.includes('/blobs/uploads/') &&
      r.path.includes(`digest=${encodeURIComponent(digest)}`),
  );
}

let registry: RegistryFixture;
let proxy: Proxy;
let dir: string;
let client: RegistryClient;
const envOf = (name: string): NodeJS.ProcessEnv => {
  const home = path.join(dir, name);
  fs.mkdirSync(home, { recursive: true, mode: 0o700 });
  return { SMOLVM_HOME: home, HOME: home };
};

beforeAll(async () => {
  registry = await startRegistry();
  proxy = await startProxy({ target: registry.url });
});
afterAll(async () => {
  await proxy?.close();
  await registry?.stop();
});
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pack-registry-'));
  client = new RegistryClient({ config: RegistryConfig.fromSettings({}), retry: { backoffMs: 20 } });
});
afterEach(async () => {
  await client.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

it('pushes two packs sharing kernel and agent, which the registry receives once; a clean home pulls the same pack back', async () => {
  const one = await makePack(path.join(dir, 'one.smolmachine'), crypto.randomBytes(30_000));
  const two = await makePack(path.join(dir, 'two.smolmachine'), crypto.randomBytes(40_000), { cpus: 2 });
  const pusher = envOf('pusher');
  proxy.requests.length = 0;
  const a = await pushPack(one.path, `${proxy.host}/packs/one:v1`, { env: pusher, client });
  expect(a.packDigest).toBe(one.digest);
  expect(a.platform).toBe('linux/amd64');
  expect(a.blobs.map((b) => b.outcome)).toEqual(['uploaded', 'uploaded', 'uploaded', 'uploaded']);
  const b = await pushPack(two.path, `${proxy.host}/packs/two:v1`, { env: pusher, client });
  expect(b.blobs.map((x) => x.outcome)).toEqual(['uploaded', 'mounted', 'mounted', 'uploaded']);
  for (const name of ['kernel', 'agent'] as const)
    expect(uploadsOf(proxy.requests, `sha256:${one.section(name)?.sha256}`)).toHaveLength(1);

  // A clean home: the pack lands in the cache keyed by the artifact's digest, identical to the pushed one.
  const clean = envOf('clean');
  const pulled = await pullPack(`${registry.host}/packs/one:v1`, { env: clean, client, platform: 'linux/amd64' });
  expect(pulled.cached).toBe(false);
  expect(pulled.path).toBe(pulledPackPath(a.manifest.digest, clean));
  expect(pulled.packDigest).toBe(one.digest);
  expect(fs.readFileSync(pulled.path).equals(fs.readFileSync(one.path))).toBe(true);
  await PackFile.open(pulled.path).verify();
  const again = await pullPack(`${registry.host}/packs/one@${a.index.digest}`, {
    env: clean,
    client,
    platform: 'linux/amd64',
  });
  expect(again).toMatchObject({ cached: true, path: pulled.path, downloadedBytes: 0 });

  // -o writes where asked; --from resolution pulls references and passes files through.
  const output = path.join(dir, 'out.smolmachine');
  expect(
    (await pullPack(`${registry.host}/packs/two:v1`, { env: clean, client, output, platform: 'linux/amd64' })).path,
  ).toBe(output);
  expect(PackFile.open(output).digest).toBe(two.digest);
  expect(await resolvePackSource(output, { env: clean, client })).toEqual({ path: output });
  const viaRef = await resolvePackSource(`${registry.host}/packs/two:v1`, {
    env: clean,
    client,
    platform: 'linux/amd64',
  });
  expect(viaRef.path).toBe(pulledPackPath(b.manifest.digest, clean));
});

it('pushes the payload of a single-file executable, which pulls back as a plain .smolmachine', async () => {
  const rootfs = crypto.randomBytes(7000);
  const content: Record<string, Buffer> = { kernel, agent, rootfs };
  const exe = path.join(dir, 'app');
  await assemblePack({
    output: exe,
    manifest: base,
    prefix: Buffer.from('#!/bin/sh\necho a stub that does not travel\n'),
    sections: (['kernel', 'agent', 'rootfs'] as SectionName[]).map((name) => ({
      name,
      open: () => Readable.from([content[name]]),
    })),
  });
  const single = PackFile.open(exe);
  expect(single.payloadStart).toBeGreaterThan(0);
  const env = envOf('single');
  await pushPack(exe, `${registry.host}/packs/single:v1`, { env, client });
  const pulled = await pullPack(`${registry.host}/packs/single:v1`, {
    env: envOf('single-clean'),
    client,
    platform: 'linux/amd64',
  });
  expect(pulled.packDigest).toBe(single.digest);
  expect(fs.readFileSync(pulled.path).equals(fs.readFileSync(exe).subarray(single.payloadStart))).toBe(true);
});

it('tells files from references, and names a value that is neither', async () => {
  expect(isPackReference('./app.smolmachine')).toBe(false);
  expect(isPackReference('app.smolmachine')).toBe(false);
  expect(isPackReference('/tmp/x')).toBe(false);
  expect(isPackReference('binsquare/custom:v1')).toBe(true);
  expect(isPackReference('python-dev')).toBe(true);
  await expect(resolvePackSource('Not A Ref', { env: envOf('x'), client })).rejects.toThrow(
    'Not A Ref is neither a file nor an artifact reference',
  );
});

it('refuses a forged artifact whose section table or platform does not match what the registry serves', async () => {
  const pack = await makePack(path.join(dir, 'p.smolmachine'), crypto.randomBytes(5000));
  const layers = pack.sections().map((s) => ({
    mediaType: s.media_type,
    digest: `sha256:${s.sha256}`,
    size: s.size,
    open: (start = 0, end = s.size - 1) =>
      fs.createReadStream(pack.path, { start: s.fileOffset + start, end: s.fileOffset + end }),
  }));
  const config = Buffer.from(JSON.stringify(pack.manifest));
  const amd64 = { os: 'linux', architecture: 'amd64' };
  // The rootfs layer swapped for other bytes: each blob is valid, the table no longer matches.
  const other = Buffer.alloc(5000, 7);
  await pushArtifact(client, `${registry.host}/forged/table:v1`, {
    artifactType: MACHINE_ARTIFACT_TYPE,
    config: { mediaType: PACK_MANIFEST_MEDIA_TYPE, bytes: config },
    layers: [
      ...layers.slice(0, 2),
      {
        mediaType: layers[2].mediaType,
        digest: `sha256:${crypto.createHash('sha256').update(other).digest('hex')}`,
        size: other.length,
        open: () => Readable.from([other]),
      },
    ],
    platform: amd64,
  });
  const env = envOf('forged');
  const output = path.join(dir, 'forged.smolmachine');
  const err = await pullPack(`${registry.host}/forged/table:v1`, {
    env,
    client,
    output,
    platform: 'linux/amd64',
  }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(PackFormatError);
  expect((err as Error).message).toBe(
    `${registry.host}/forged/table:v1 is not a usable .smolmachine: its manifest's section table does not match the artifact's layers`,
  );
  expect(fs.existsSync(output)).toBe(false);

  // Listed for arm64, but the pack says amd64.
  await pushArtifact(client, `${registry.host}/forged/platform:v1`, {
    artifactType: MACHINE_ARTIFACT_TYPE,
    config: { mediaType: PACK_MANIFEST_MEDIA_TYPE, bytes: config },
    layers,
    platform: { os: 'linux', architecture: 'arm64' },
  });
  await expect(
    pullPack(`${registry.host}/forged/platform:v1`, { env, client, output, platform: 'linux/arm64' }),
  ).rejects.toThrow('it is listed for linux/arm64 but its manifest says linux/amd64');
  expect(fs.existsSync(output)).toBe(false);
});

it('pushes and pulls a version 2 pack (a running machine: memory and state sections) unchanged', async () => {
  const file = path.join(dir, 'snap.smolmachine');
  const memory = Buffer.alloc(64 * 1024 * 1024);
  crypto.randomBytes(4096).copy(memory, 1024 * 1024);
  const content: Record<string, Buffer> = {
    kernel,
    agent,
    rootfs: crypto.randomBytes(6000),
    overlay: crypto.randomBytes(8192),
    storage: crypto.randomBytes(8192),
    memory,
    state: crypto.randomBytes(20_000),
  };
  await assemblePack({
    output: file,
    manifest: {
      ...base,
      memory_mib: 64,
      snapshot: {
        id: 'web:ready',
        driver: 'kvm',
        qemu: { major: 7, minor: 2, micro: 22 },
        qemu_package: '',
        nic: true,
      },
    },
    sections: (Object.keys(content) as SectionName[]).map((name) => ({
      name,
      open: () => Readable.from([content[name]]),
    })),
  });
  const pack = PackFile.open(file);
  expect(pack.manifest.version).toBe(2);
  const pushed = await pushPack(file, `${registry.host}/packs/snap:v1`, { env: envOf('pusher'), client });
  expect(pushed.packDigest).toBe(pack.digest);
  const pulled = await pullPack(`${registry.host}/packs/snap:v1`, {
    env: envOf('clean'),
    client,
    platform: 'linux/amd64',
  });
  expect(pulled.packDigest).toBe(pack.digest);
  expect(fs.readFileSync(pulled.path).equals(fs.readFileSync(file))).toBe(true);
  expect(PackFile.open(pulled.path).manifest.snapshot).toEqual(pack.manifest.snapshot);
});

describe('format version 4: the runtime travels as a layer of its own and lands in the section cache', () => {
  // A stand-in for the stub executable every pack of one build is made with.
  const stub = crypto.randomBytes(4 * SECTION_ALIGN + 10);
  const size = 4 * SECTION_ALIGN;
  const runtime = { size, sha256: crypto.createHash('sha256').update(stub.subarray(0, size)).digest('hex') };
  const digest = `sha256:${runtime.sha256}`;
  const cacheFileOf = (env: NodeJS.ProcessEnv) => path.join(smolvmDirs(env).cache, 'pack', 'sections', runtime.sha256);

  /** `X` beside `X.smolmachine`, as `pack create` writes them. */
  async function runtimePack(name: string, rootfs: Buffer, manifest: Partial<PackManifestBase> = {}) {
    fs.writeFileSync(path.join(dir, name), stub, { mode: 0o755 });
    const content: Record<string, Buffer> = { kernel, agent, rootfs };
    const file = path.join(dir, `${name}.smolmachine`);
    await assemblePack({
      output: file,
      manifest: { ...base, ...manifest },
      sections: (['kernel', 'agent', 'rootfs'] as SectionName[]).map((n) => ({
        name: n,
        open: () => Readable.from([content[n]]),
      })),
      runtime,
    });
    return PackFile.open(file);
  }

  it('is uploaded once across two packs; a clean home pulls the same pack and finds the runtime cached', async () => {
    const one = await runtimePack('one', crypto.randomBytes(30_000));
    const two = await runtimePack('two', crypto.randomBytes(40_000), { cpus: 2 });
    expect(one.manifest.version).toBe(4);
    const pusher = envOf('pusher');
    proxy.requests.length = 0;
    const a = await pushPack(one.path, `${proxy.host}/rt/one:v1`, { env: pusher, client });
    // Config, three sections and the runtime.
    expect(a.blobs).toHaveLength(5);
    expect(a.blobs.find((x) => x.digest === digest)).toEqual({ digest, size, outcome: 'uploaded' });
    const b = await pushPack(two.path, `${proxy.host}/rt/two:v1`, { env: pusher, client });
    expect(b.blobs.find((x) => x.digest === digest)?.outcome).toBe('mounted');
    expect(uploadsOf(proxy.requests, digest)).toHaveLength(1);
    // The last layer, named and typed as the runtime.
    const res = await fetch(`${registry.url}/v2/rt/one/manifests/${a.manifest.digest}`, {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    const layers = ((await res.json()) as { layers: Array<Record<string, unknown>> }).layers;
    expect(layers.at(-1)).toEqual({
      mediaType: RUNTIME_MEDIA_TYPE,
      digest,
      size,
      annotations: { 'org.opencontainers.image.title': 'runtime' },
    });

    const clean = envOf('clean');
    const cacheFile = cacheFileOf(clean);
    const pulled = await pullPack(`${registry.host}/rt/one:v1`, { env: clean, client, platform: 'linux/amd64' });
    // The .smolmachine is the pushed one byte for byte: the runtime is not put into it.
    expect(fs.readFileSync(pulled.path).equals(fs.readFileSync(one.path))).toBe(true);
    expect(pulled.runtime).toBe(cacheFile);
    expect(fs.readFileSync(cacheFile).equals(stub.subarray(0, size))).toBe(true);
    expect(fs.statSync(cacheFile).mode & 0o777).toBe(0o600);
    expect(await runtimeDisk(PackFile.open(pulled.path), smolvmDirs(clean).cache)).toEqual({
      path: cacheFile,
      sha256: runtime.sha256,
    });
    // A pull the cache has the pack of, but lost the runtime of, puts it back.
    fs.rmSync(cacheFile);
    const again = await pullPack(`${registry.host}/rt/one:v1`, { env: clean, client, platform: 'linux/amd64' });
    expect(again).toMatchObject({ cached: true, runtime: cacheFile });
    expect(fs.readFileSync(cacheFile).equals(stub.subarray(0, size))).toBe(true);
  });

  it('a pusher without the runtime is refused before anything is sent; a candidate it names is used', async () => {
    const pack = await runtimePack('lone', crypto.randomBytes(5000));
    const elsewhere = path.join(dir, 'stub-elsewhere');
    fs.renameSync(path.join(dir, 'lone'), elsewhere);
    const env = envOf('lone-pusher');
    proxy.requests.length = 0;
    await expect(pushPack(pack.path, `${proxy.host}/rt/lone:v1`, { env, client })).rejects.toThrow(NotFoundError);
    expect(proxy.requests).toHaveLength(0);
    const pushed = await pushPack(pack.path, `${proxy.host}/rt/lone:v1`, {
      env,
      client,
      runtimeCandidates: [elsewhere],
    });
    expect(pushed.blobs.map((x) => x.digest)).toContain(digest);
  });

  it('refuses a registry whose runtime layer does not match the manifest, leaving nothing', async () => {
    const pack = await runtimePack('f', crypto.randomBytes(5000));
    const plain = await makePack(path.join(dir, 'plain.smolmachine'), crypto.randomBytes(5000));
    const layer = (bytes: Buffer, mediaType = RUNTIME_MEDIA_TYPE) => ({
      mediaType,
      digest: `sha256:${crypto.createHash('sha256').update(bytes).digest('hex')}`,
      size: bytes.length,
      open: (start = 0, end = bytes.length - 1) => Readable.from([bytes.subarray(start, end + 1)]),
    });
    const prefix = stub.subarray(0, size);
    const cases: Array<[string, PackFile, ArtifactLayer[]]> = [
      ['other-bytes', pack, [...layersOf(pack), layer(crypto.randomBytes(size))]],
      ['missing', pack, layersOf(pack)],
      ['media-type', pack, [...layersOf(pack), layer(prefix, 'application/octet-stream')]],
      ['shorter', pack, [...layersOf(pack), layer(prefix.subarray(0, size - SECTION_ALIGN))]],
      // A pack without a runtime does not get one from an extra layer either.
      ['extra', plain, [...layersOf(plain), layer(prefix)]],
    ];
    const env = envOf('forged-runtime');
    for (const [name, config, layers] of cases) {
      const reference = `${registry.host}/forged/runtime-${name}:v1`;
      await pushArtifact(client, reference, {
        artifactType: MACHINE_ARTIFACT_TYPE,
        config: { mediaType: PACK_MANIFEST_MEDIA_TYPE, bytes: Buffer.from(JSON.stringify(config.manifest)) },
        layers,
        platform: { os: 'linux', architecture: 'amd64' },
      });
      const output = path.join(dir, `forged-${name}.smolmachine`);
      const err = await pullPack(reference, { env, client, output, platform: 'linux/amd64' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PackFormatError);
      expect((err as Error).message).toBe(
        `${reference} is not a usable .smolmachine: its manifest's runtime does not match the artifact's layers`,
      );
      expect(fs.existsSync(output)).toBe(false);
      expect(fs.existsSync(cacheFileOf(env))).toBe(false);
    }
  });
});

/** A pack's sections as artifact layers, streamed from the file. */
function layersOf(pack: PackFile): ArtifactLayer[] {
  return pack.sections().map((s) => ({
    mediaType: s.media_type,
    digest: `sha256:${s.sha256}`,
    size: s.size,
    open: (start = 0, end = s.size - 1) =>
      fs.createReadStream(pack.path, { start: s.fileOffset + start, end: s.fileOffset + end }),
  }));
}
