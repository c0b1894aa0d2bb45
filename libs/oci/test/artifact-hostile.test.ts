// A hostile registry serving artifacts: wrong bytes for a digest, blobs longer than announced,
// sizes past our bounds, mislabelled manifests, the wrong artifact type, and a push answered with
// another digest. Each is refused with one clear line and leaves nothing in the store.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ContentStore,
  DigestMismatchError,
  MACHINE_ARTIFACT_TYPE,
  MediaType,
  RegistryClient,
  RegistryConfig,
  RegistryError,
  SizeMismatchError,
  pullArtifact,
  pushArtifact,
  sha256Digest,
} from '../src';
import { listDir, tempHome, type TempHome } from './helpers/env';

jest.setTimeout(60_000);

interface Doc {
  status?: number;
  contentType?: string;
  body: Buffer;
  headers?: Record<string, string>;
}

interface Fake {
  host: string;
  requests: string[];
  close(): Promise<void>;
}

/** Answers GET/HEAD from a path table; 404 for the rest. `/v2/` answers 200. */
async function fakeRegistry(
  table: Record<string, Doc>,
  extra?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean,
): Promise<Fake> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    req.resume();
    if (req.url === '/v2/') return void res.end('{}');
    if (extra?.(req, res)) return;
    const doc = table[(req.url ?? '').split('?')[0]];
    if (!doc) {
      res.writeHead(404, { 'content-type': 'application/json' });
      return void res.end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}');
    }
    res.writeHead(doc.status ?? 200, {
      ...(doc.contentType ? { 'content-type': doc.contentType } : {}),
      'content-length': String(doc.body.length),
      ...doc.headers,
    });
    res.end(req.method === 'HEAD' ? undefined : doc.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const config = Buffer.from('{"name":"x"}');
const section = crypto.randomBytes(4096);

/** An index -> manifest -> config + one layer, served as `repo:latest`, with overrides. */
function artifactTable(
  repo: string,
  o: {
    layerSize?: number;
    layerBody?: Buffer;
    manifestType?: string;
    indexType?: string;
    artifactType?: string | null;
    layers?: number;
  } = {},
): Record<string, Doc> {
  const layer = {
    mediaType: 'application/vnd.smolvm.machine.section.rootfs.v1',
    digest: sha256Digest(section),
    size: o.layerSize ?? section.length,
  };
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      ...(o.artifactType === null ? {} : { artifactType: o.artifactType ?? MACHINE_ARTIFACT_TYPE }),
      config: {
        mediaType: 'application/vnd.smolvm.machine.manifest.v1+json',
        digest: sha256Digest(config),
        size: config.length,
      },
      layers: Array.from({ length: o.layers ?? 1 }, () => layer),
    }),
  );
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [
        {
          mediaType: MediaType.OciManifest,
          digest: sha256Digest(manifest),
          size: manifest.length,
          platform: { os: 'linux', architecture: 'amd64' },
        },
      ],
    }),
  );
  return {
    [`/v2/${repo}/manifests/latest`]: { contentType: o.indexType ?? MediaType.OciIndex, body: index },
    [`/v2/${repo}/manifests/${sha256Digest(manifest)}`]: {
      contentType: o.manifestType ?? MediaType.OciManifest,
      body: manifest,
    },
    [`/v2/${repo}/blobs/${sha256Digest(config)}`]: { contentType: 'application/octet-stream', body: config },
    [`/v2/${repo}/blobs/${sha256Digest(section)}`]: {
      contentType: 'application/octet-stream',
      body: o.layerBody ?? section,
    },
  };
}

let fake: Fake | undefined;
let home: TempHome;
let client: RegistryClient;
let store: ContentStore;
beforeEach(() => {
  home = tempHome();
  store = ContentStore.open(home.env);
  client = new RegistryClient({
    config: RegistryConfig.fromSettings({}),
    retry: { retries: 1, backoffMs: 1, maxBackoffMs: 1 },
  });
});
afterEach(async () => {
  await client.close();
  await fake?.close();
  fake = undefined;
  home.cleanup();
});

const pull = (ref: string, limits = {}): Promise<unknown> =>
  pullArtifact(client, store, ref, { artifactType: MACHINE_ARTIFACT_TYPE, platform: 'linux/amd64', limits }).catch(
    (e: unknown) => e,
  );
const blobRequests = (): string[] => (fake as Fake).requests.filter((r) => r.includes('/blobs/'));

it('pulls a well-formed artifact from the fake registry (the control case)', async () => {
  fake = await fakeRegistry(artifactTable('ok/app'));
  const pulled = await pullArtifact(client, store, `${fake.host}/ok/app:latest`, {
    artifactType: MACHINE_ARTIFACT_TYPE,
    platform: 'linux/amd64',
  });
  expect(fs.readFileSync(pulled.layers[0].path).equals(section)).toBe(true);
});

it('refuses a blob whose bytes do not hash to its digest, and keeps none of it', async () => {
  const wrong = Buffer.from(section);
  wrong[100] ^= 0xff;
  fake = await fakeRegistry(artifactTable('bad/digest', { layerBody: wrong }));
  const err = await pull(`${fake.host}/bad/digest:latest`);
  expect(err).toBeInstanceOf(DigestMismatchError);
  expect((err as Error).message).toBe(
    `blob ${sha256Digest(section)} of ${fake.host}/bad/digest: digest mismatch (expected ${sha256Digest(section)}, got ${sha256Digest(wrong)})`,
  );
  expect(listDir(store.blobsDir)).not.toContain(sha256Digest(section).slice(7));
  expect(listDir(store.ingestDir)).toEqual([]);
});

it('stops reading a blob longer than its descriptor', async () => {
  fake = await fakeRegistry(
    artifactTable('bad/long', { layerBody: Buffer.concat([section, crypto.randomBytes(1 << 20)]) }),
  );
  const err = await pull(`${fake.host}/bad/long:latest`);
  expect(err).toBeInstanceOf(SizeMismatchError);
  expect(listDir(store.blobsDir)).not.toContain(sha256Digest(section).slice(7));
});

it('refuses sizes past its bounds before downloading anything', async () => {
  fake = await fakeRegistry(artifactTable('big/layer', { layerSize: 2 ** 40 }));
  const err = await pull(`${fake.host}/big/layer:latest`);
  expect(err).toBeInstanceOf(RegistryError);
  expect((err as Error).message).toBe(
    `${fake.host}/big/layer:latest: layer ${sha256Digest(section)} is ${2 ** 40} bytes, more than the ${64 * 1024 ** 3}-byte bound`,
  );
  expect(blobRequests()).toEqual([]);

  await fake.close();
  fake = await fakeRegistry(artifactTable('many/layers', { layers: 65 }));
  expect(((await pull(`${fake.host}/many/layers:latest`)) as Error).message).toBe(
    `${fake.host}/many/layers:latest: 65 layers, more than the 64 an artifact may have`,
  );

  await fake.close();
  fake = await fakeRegistry(artifactTable('small/bound'));
  expect(((await pull(`${fake.host}/small/bound:latest`, { totalBytes: 1000 })) as Error).message).toBe(
    `${fake.host}/small/bound:latest: the whole artifact is ${config.length + section.length} bytes, more than the 1000-byte bound`,
  );
  expect(blobRequests()).toEqual([]);
});

it('refuses manifests whose Content-Type contradicts their body, or that are no OCI artifacts', async () => {
  fake = await fakeRegistry(artifactTable('bad/type', { manifestType: MediaType.DockerManifest }));
  expect(((await pull(`${fake.host}/bad/type:latest`)) as Error).message).toBe(
    `${fake.host}/bad/type:latest (linux/amd64): ${fake.host} sent Content-Type ${MediaType.DockerManifest} for a ${MediaType.OciManifest} document`,
  );
  await fake.close();
  fake = await fakeRegistry(artifactTable('html/index', { indexType: 'text/html; charset=utf-8' }));
  expect(((await pull(`${fake.host}/html/index:latest`)) as Error).message).toBe(
    `${fake.host}/html/index:latest: ${fake.host} sent Content-Type text/html for a ${MediaType.OciIndex} document`,
  );
  await fake.close();
  fake = await fakeRegistry(artifactTable('other/type', { artifactType: 'application/vnd.example.thing.v1' }));
  expect(((await pull(`${fake.host}/other/type:latest`)) as Error).message).toBe(
    `${fake.host}/other/type:latest is an artifact of type application/vnd.example.thing.v1, not an artifact of type ${MACHINE_ARTIFACT_TYPE}`,
  );
  expect(blobRequests()).toEqual([]);
});

it('refuses a push the registry acknowledges with another digest', async () => {
  const other = sha256Digest('something else');
  fake = await fakeRegistry({}, (req, res) => {
    if (req.method === 'POST' && req.url?.startsWith('/v2/lying/app/blobs/uploads/')) {
      res.writeHead(202, { location: '/v2/lying/app/blobs/uploads/u1' });
      res.end();
      return true;
    }
    if (req.method === 'PUT' && req.url?.startsWith('/v2/lying/app/blobs/uploads/u1')) {
      res.writeHead(201, { 'docker-content-digest': other });
      res.end();
      return true;
    }
    return false;
  });
  const err = await pushArtifact(client, `${fake.host}/lying/app:v1`, {
    artifactType: MACHINE_ARTIFACT_TYPE,
    config: { mediaType: 'application/vnd.smolvm.machine.manifest.v1+json', bytes: config },
    layers: [],
    platform: { os: 'linux', architecture: 'amd64' },
  }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(DigestMismatchError);
  expect((err as Error).message).toBe(
    `pushing blob ${sha256Digest(config)} to ${fake.host}/lying/app: digest mismatch (expected ${sha256Digest(config)}, got ${other})`,
  );
  expect(fake.requests.filter((r) => r.includes('/manifests/'))).toEqual([]);
});
