// A hostile registry on loopback: bodies that never end (chunked, no Content-Length) and
// descriptors that announce absurd sizes. The client must stop reading at its own bound, name the
// registry in the error, and keep nothing.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, RegistryClient, RegistryConfig, RegistryError } from '../src';
import { newService, tempHome, type TempHome } from './helpers/env';

jest.setTimeout(60_000);

/** What a hostile registry sent before the client hung up. */
interface Hostile {
  host: string;
  sent: () => number;
  requests: string[];
  close: () => Promise<void>;
}

/** Streams `chunk` over and over (chunked encoding) until the client goes or `limit` bytes went. */
function streamEndlessly(res: http.ServerResponse, chunk: Buffer, limit: number, count: (n: number) => void): void {
  let sent = 0;
  const pump = (): void => {
    while (sent < limit) {
      sent += chunk.length;
      count(chunk.length);
      if (!res.write(chunk)) return void res.once('drain', pump);
    }
    res.end();
  };
  res.on('close', () => {
    sent = limit;
  });
  pump();
}

async function hostileRegistry(
  answer: (req: http.IncomingMessage, res: http.ServerResponse, count: (n: number) => void) => void,
): Promise<Hostile> {
  let sent = 0;
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (req.url === '/v2/') return void res.end('{}');
    answer(req, res, (n) => (sent += n));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    sent: () => sent,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const ENDLESS = 64 * 1024 * 1024;
/** Socket buffers on both ends may hold this much beyond what the client read. */
const SLACK = 8 * 1024 * 1024;

let registry: Hostile | undefined;
let home: TempHome | undefined;
afterEach(async () => {
  await registry?.close();
  registry = undefined;
  home?.cleanup();
  home = undefined;
});

it('stops reading a chunked manifest that never ends, at the manifest bound, naming the registry', async () => {
  registry = await hostileRegistry((_req, res, count) => {
    res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
    streamEndlessly(res, Buffer.alloc(64 * 1024, ' '), ENDLESS, count);
  });
  const client = new RegistryClient({ config: RegistryConfig.fromSettings({}) });
  try {
    const err: unknown = await client
      .getManifest({ registry: registry.host, repository: 'hostile/endless', tag: 'latest' })
      .catch((e: unknown) => e);
    expect(registry.sent()).toBeLessThan(MAX_MANIFEST_BYTES + SLACK);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as Error).message).toBe(
      `manifest of ${registry.host}/hostile/endless:latest is larger than ${MAX_MANIFEST_BYTES} bytes`,
    );
  } finally {
    await client.close();
  }
});

it('stops reading an endless error body', async () => {
  registry = await hostileRegistry((_req, res, count) => {
    res.writeHead(400, { 'content-type': 'application/json' });
    streamEndlessly(res, Buffer.alloc(64 * 1024, ' '), ENDLESS, count);
  });
  const client = new RegistryClient({
    config: RegistryConfig.fromSettings({}),
    retry: { retries: 0, backoffMs: 1, maxBackoffMs: 1 },
  });
  try {
    await expect(
      client.getManifest({ registry: registry.host, repository: 'hostile/error', tag: 'latest' }),
    ).rejects.toThrow(`answered HTTP 400`);
  } finally {
    await client.close();
  }
  expect(registry.sent()).toBeLessThan(MAX_MANIFEST_BYTES + SLACK);
});

it('refuses an image config larger than its bound before downloading any of it', async () => {
  const huge = 10 * 1024 * 1024 * 1024;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'a'.repeat(64)}`, size: huge },
      layers: [],
    }),
  );
  registry = await hostileRegistry((req, res, count) => {
    if (req.url?.includes('/manifests/')) {
      res.writeHead(200, {
        'content-type': 'application/vnd.oci.image.manifest.v1+json',
        'content-length': manifest.length,
      });
      return void res.end(manifest);
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    streamEndlessly(res, Buffer.alloc(64 * 1024, '{'), ENDLESS, count);
  });
  home = tempHome();
  const service = newService(home);
  try {
    await expect(service.pull(`${registry.host}/hostile/config:latest`)).rejects.toThrow(
      `image ${registry.host}/hostile/config:latest: its config is ${huge} bytes, more than the ${MAX_CONFIG_BYTES}-byte bound`,
    );
  } finally {
    await service.close();
  }
  expect(registry.requests.filter((r) => r.includes('/blobs/'))).toEqual([]);
  expect(registry.sent()).toBe(0);
});
