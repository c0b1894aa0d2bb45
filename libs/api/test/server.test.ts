// The API server without VMs: its document, its error shape and statuses for bad requests, auth,
// the Host check and its listeners. Every response is checked against the generated document.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { request, Agent } from 'undici';
import { MachineStore } from '@smolvm/machine-store';
import { Machines } from '@smolvm/machines';
import { assertListenAllowed, parseListen, readTokenFile } from '../src/listen';
import { startServe, type RunningServer } from '../src/serve';
import { JSON_BODY_LIMIT, openApiDocument } from '../src/server';
import { openApiChecker, type OpenApiChecker } from '../../../tools/fixtures/openapi-check';

let home: string;
let machines: Machines;
let checker: OpenApiChecker;
let server: RunningServer;
const TOKEN = 'k'.repeat(20) + 'secret';

async function call(
  base: string,
  method: string,
  url: string,
  opts: { body?: string | Buffer; headers?: Record<string, string>; dispatcher?: Agent; unchecked?: boolean } = {},
): Promise<{
  status: number;
  json: { error?: string; code?: string } & Record<string, unknown>;
  text: string;
  headers: Record<string, unknown>;
}> {
  const res = await request(base + url, {
    method: method as 'GET',
    ...(opts.body !== undefined ? { body: opts.body } : {}),
    headers: opts.headers ?? {},
    ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
  });
  const text = await res.body.text();
  if (!opts.unchecked)
    checker.check(method, url, res.statusCode, res.headers['content-type'] as string | undefined, text);
  return {
    status: res.statusCode,
    json: text && String(res.headers['content-type']).startsWith('application/json') ? JSON.parse(text) : {},
    text,
    headers: res.headers,
  };
}
const json = { 'content-type': 'application/json' };
// No request here gets as far as a bare machine's base image (every create is refused first).
const noBase = (): Promise<never> => Promise.reject(new Error('no base image in this test'));

beforeAll(async () => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-api-'));
  fs.chmodSync(home, 0o700);
  machines = new Machines({
    store: new MachineStore(path.join(home, 'machines')),
    env: { ...process.env, SMOLVM_HOME: home },
  });
  checker = await openApiChecker(await openApiDocument());
  server = await startServe({ machines, base: noBase, listen: { host: '127.0.0.1', port: 0 } });
});

afterAll(async () => {
  await server?.close();
  fs.rmSync(home, { recursive: true, force: true });
});

describe('the OpenAPI document', () => {
  it('is OpenAPI 3.1, valid, lists every route of the reference, and is what the server serves', async () => {
    expect(checker.doc.openapi).toBe('3.1.0');
    const paths = Object.entries(checker.doc.paths).flatMap(([p, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`),
    );
    for (const route of [
      'POST /api/v1/machines',
      'GET /api/v1/machines',
      'GET /api/v1/machines/{name}',
      'DELETE /api/v1/machines/{name}',
      'POST /api/v1/machines/{name}/start',
      'POST /api/v1/machines/{name}/stop',
      'POST /api/v1/machines/{name}/exec',
      'POST /api/v1/machines/{name}/exec/stream',
      'PUT /api/v1/machines/{name}/files/{*}',
      'GET /api/v1/machines/{name}/files/{*}',
      'GET /api/v1/machines/{name}/logs',
      'POST /api/v1/machines/{name}/images/pull',
      'POST /api/v1/runs',
      'POST /api/v1/machines/{name}/snapshots',
      'POST /api/v1/machines/{name}/fork',
      'GET /api/v1/snapshots',
      'GET /api/v1/snapshots/{id}',
      'DELETE /api/v1/snapshots/{id}',
    ]) {
      expect(paths).toContain(route);
    }
    const served = await call(server.url!, 'GET', '/api/v1/openapi.json');
    expect(served.status).toBe(200);
    expect(JSON.parse(served.text)).toEqual(JSON.parse(JSON.stringify(checker.doc)));
  });
});

describe('requests the server refuses', () => {
  it('answers an empty list, then a missing machine with 404 and a stable code', async () => {
    expect((await call(server.url!, 'GET', '/api/v1/machines')).json).toEqual({ machines: [] });
    const missing = await call(server.url!, 'GET', '/api/v1/machines/nope');
    expect(missing.status).toBe(404);
    expect(missing.json.code).toBe('not-found');
    expect(missing.json.error).toContain('machine "nope" does not exist');
    for (const [method, url, body] of [
      ['POST', '/api/v1/machines/nope/exec', '{"command":["true"]}'],
      ['POST', '/api/v1/machines/nope/start', undefined],
      ['DELETE', '/api/v1/machines/nope', undefined],
      ['GET', '/api/v1/machines/nope/logs', undefined],
    ] as const) {
      const r = await call(server.url!, method, url, body ? { body, headers: json } : {});
      expect([r.status, r.json.code]).toEqual([404, 'not-found']);
    }
  });

  it('refuses bad JSON, unknown fields, wrong types, bad names and wrong media types with 400/415', async () => {
    const bad = await call(server.url!, 'POST', '/api/v1/machines', { body: '{"name": ', headers: json });
    expect([bad.status, bad.json.code]).toEqual([400, 'invalid-request']);
    const unknown = await call(server.url!, 'POST', '/api/v1/machines', {
      body: JSON.stringify({ name: 'a', volumes: ['/:/host'] }),
      headers: json,
    });
    expect([unknown.status, unknown.json.code]).toEqual([400, 'invalid-request']);
    expect(unknown.json.error).toContain('additional properties');
    const type = await call(server.url!, 'POST', '/api/v1/machines', {
      body: JSON.stringify({ name: 'a', cpus: 'many' }),
      headers: json,
    });
    expect([type.status, type.json.code]).toEqual([400, 'invalid-request']);
    const name = await call(server.url!, 'POST', '/api/v1/machines', {
      body: JSON.stringify({ name: '../etc' }),
      headers: json,
    });
    expect([name.status, name.json.code]).toEqual([400, 'invalid-request']);
    const pathName = await call(server.url!, 'GET', '/api/v1/machines/..%2Fetc');
    expect([pathName.status, pathName.json.code]).toEqual([400, 'invalid-request']);
    const media = await call(server.url!, 'POST', '/api/v1/machines', {
      body: 'name=a',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect([media.status, media.json.code]).toEqual([415, 'unsupported-media-type']);
    const noCommand = await call(server.url!, 'POST', '/api/v1/machines/a/exec', {
      body: JSON.stringify({ command: [] }),
      headers: json,
    });
    expect([noCommand.status, noCommand.json.code]).toEqual([400, 'invalid-request']);
    const dots = await call(server.url!, 'GET', '/api/v1/machines/a/files/workspace/..%2Fetc/passwd');
    expect([dots.status, dots.json.code]).toEqual([400, 'invalid-path']);
    const route = await call(server.url!, 'GET', '/api/v2/machines', { unchecked: true });
    expect([route.status, route.json.code]).toEqual([404, 'no-such-route']);
  });

  it('refuses a JSON body over the limit with 413, and a value the merge rules reject with 422', async () => {
    const big = await call(server.url!, 'POST', '/api/v1/machines', {
      body: JSON.stringify({ name: 'a', init: ['x'.repeat(JSON_BODY_LIMIT)] }),
      headers: json,
    });
    expect([big.status, big.json.code]).toEqual([413, 'body-too-large']);
    const memory = await call(server.url!, 'POST', '/api/v1/machines', {
      body: JSON.stringify({ name: 'a', memory: '12 parsecs' }),
      headers: json,
    });
    expect([memory.status, memory.json.code]).toEqual([422, 'unprocessable']);
    expect(memory.json.error).toContain('memory');
    expect(fs.existsSync(path.join(home, 'machines', 'a'))).toBe(false);
  });

  it('never sends CORS headers', async () => {
    const r = await call(server.url!, 'GET', '/api/v1/machines', { headers: { origin: 'http://localhost:3000' } });
    expect(r.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('without a token, refuses a Host that is not loopback (DNS rebinding)', async () => {
    const r = await call(server.url!, 'GET', '/api/v1/machines', { headers: { host: 'evil.example:8080' } });
    expect([r.status, r.json.code]).toEqual([403, 'forbidden-host']);
  });
});

describe('snapshots (of a stopped machine: no VM)', () => {
  it('refuses bad ids, unknown snapshots and machines, and bodies that mix a snapshot with what it fixes', async () => {
    expect((await call(server.url!, 'GET', '/api/v1/snapshots')).json).toEqual({ snapshots: [] });
    for (const url of [
      '/api/v1/snapshots/no-tag',
      '/api/v1/snapshots/a:b:c',
      '/api/v1/snapshots/..%2Fetc:1',
      '/api/v1/snapshots/a:..',
    ]) {
      const r = await call(server.url!, 'GET', url);
      expect([url, r.status, r.json.code]).toEqual([url, 400, 'invalid-request']);
    }
    for (const [method, url] of [
      ['GET', '/api/v1/snapshots/nope:1'],
      ['GET', '/api/v1/snapshots/nope%3A1'],
      ['DELETE', '/api/v1/snapshots/nope:1'],
    ] as const) {
      const r = await call(server.url!, method, url);
      expect([url, r.status, r.json.code]).toEqual([url, 404, 'not-found']);
      expect(r.json.error).toContain('nope:1');
    }
    const noMachine = await call(server.url!, 'POST', '/api/v1/machines/nope/snapshots', { body: '{}', headers: json });
    expect([noMachine.status, noMachine.json.code]).toEqual([404, 'not-found']);
    const badTag = await call(server.url!, 'POST', '/api/v1/machines/nope/snapshots', {
      body: JSON.stringify({ tag: '../x' }),
      headers: json,
    });
    expect([badTag.status, badTag.json.code]).toEqual([400, 'invalid-request']);
    const mixed = await call(server.url!, 'POST', '/api/v1/machines', {
      body: JSON.stringify({ name: 'm', fromSnapshot: 'nope:1', image: 'alpine', cpus: 2 }),
      headers: json,
    });
    expect([mixed.status, mixed.json.code]).toEqual([400, 'invalid-request']);
    expect(mixed.json.error).toContain('fromSnapshot cannot be combined with image, cpus');
    const unknown = await call(server.url!, 'POST', '/api/v1/machines', {
      body: JSON.stringify({ name: 'm', fromSnapshot: 'nope:1' }),
      headers: json,
    });
    expect([unknown.status, unknown.json.code]).toEqual([404, 'not-found']);
    expect(fs.existsSync(path.join(home, 'machines', 'm'))).toBe(false);
    for (const body of [
      {},
      { names: ['a'], name: 'b' },
      { count: 2 },
      { names: [] },
      { name: 'b', count: 65 },
      { names: ['../x'] },
    ]) {
      const r = await call(server.url!, 'POST', '/api/v1/machines/nope/fork', {
        body: JSON.stringify(body),
        headers: json,
      });
      expect([JSON.stringify(body), r.status, r.json.code]).toEqual([JSON.stringify(body), 400, 'invalid-request']);
    }
    const forkMissing = await call(server.url!, 'POST', '/api/v1/machines/nope/fork', {
      body: JSON.stringify({ name: 'copy' }),
      headers: json,
    });
    expect([forkMissing.status, forkMissing.json.code]).toEqual([404, 'not-found']);
  });

  it('snapshots a stopped machine, makes a machine from it, refuses to delete it while used, then deletes it', async () => {
    await machines.create({ name: 'src', storageGiB: 1, overlayGiB: 1 });
    try {
      const made = await call(server.url!, 'POST', '/api/v1/machines/src/snapshots', {
        body: JSON.stringify({ tag: 'v1' }),
        headers: json,
      });
      expect(made.status).toBe(201);
      expect(made.json).toMatchObject({ id: 'src:v1', machine: 'src', tag: 'v1', running: false, dependents: [] });
      const again = await call(server.url!, 'POST', '/api/v1/machines/src/snapshots', {
        body: JSON.stringify({ tag: 'v1' }),
        headers: json,
      });
      expect([again.status, again.json.code]).toEqual([409, 'conflict']);
      // Without a tag: the next free one.
      const untagged = await call(server.url!, 'POST', '/api/v1/machines/src/snapshots', { body: '{}', headers: json });
      expect(untagged.status).toBe(201);
      expect(untagged.json.id).not.toBe('src:v1');
      const list = await call(server.url!, 'GET', '/api/v1/snapshots');
      expect((list.json.snapshots as Array<{ id: string }>).map((x) => x.id).sort()).toEqual(
        ['src:v1', untagged.json.id as string].sort(),
      );
      // The id's colon as it is, or percent-encoded: the same snapshot.
      expect((await call(server.url!, 'GET', '/api/v1/snapshots/src:v1')).json).toEqual(
        (await call(server.url!, 'GET', '/api/v1/snapshots/src%3Av1')).json,
      );

      const copy = await call(server.url!, 'POST', '/api/v1/machines', {
        body: JSON.stringify({ name: 'copy', fromSnapshot: 'src:v1', ports: ['18080:80'] }),
        headers: json,
      });
      expect(copy.status).toBe(201);
      expect(copy.json).toMatchObject({ name: 'copy', state: 'created', storageGiB: 1, overlayGiB: 1 });
      expect((await call(server.url!, 'GET', '/api/v1/snapshots/src:v1')).json.dependents).toEqual(['copy']);
      const inUse = await call(server.url!, 'DELETE', '/api/v1/snapshots/src:v1');
      expect([inUse.status, inUse.json.code]).toEqual([409, 'conflict']);
      expect(inUse.json.error).toContain('copy');
      expect((await call(server.url!, 'DELETE', '/api/v1/machines/copy')).status).toBe(204);
      expect((await call(server.url!, 'DELETE', '/api/v1/snapshots/src%3Av1')).status).toBe(204);
      expect((await call(server.url!, 'DELETE', `/api/v1/snapshots/${untagged.json.id as string}`)).status).toBe(204);
      expect((await call(server.url!, 'GET', '/api/v1/snapshots')).json).toEqual({ snapshots: [] });
    } finally {
      await machines.delete('copy', { force: true }).catch(() => undefined);
      await machines.delete('src', { force: true });
    }
  });
});

describe('listeners and tokens', () => {
  it('refuses a non-loopback listen without a token', async () => {
    expect(() => assertListenAllowed(parseListen('0.0.0.0:8080'), false)).toThrow(
      /would let anyone who can reach this host run commands/,
    );
    expect(() => assertListenAllowed(parseListen('127.0.0.1:8080'), false)).not.toThrow();
    expect(() => assertListenAllowed(parseListen('[::1]:8080'), false)).not.toThrow();
    await expect(startServe({ machines, base: noBase, listen: parseListen('0.0.0.0:0') })).rejects.toThrow(
      /would let anyone/,
    );
    expect(() => parseListen('8080')).toThrow('is not ADDR:PORT');
    expect(() => parseListen('example.com:80')).toThrow('is not ADDR:PORT');
    expect(() => parseListen('127.0.0.1:70000')).toThrow('is not ADDR:PORT');
  });

  it('reads a token only from an owner-only file of a real token', () => {
    const file = path.join(home, 'token');
    fs.writeFileSync(file, TOKEN + '\n', { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    expect(() => readTokenFile(file)).toThrow('can be read by other users (mode 644)');
    fs.chmodSync(file, 0o600);
    expect(readTokenFile(file)).toBe(TOKEN);
    fs.writeFileSync(file, 'short');
    expect(() => readTokenFile(file)).toThrow('at least 16 characters');
    expect(() => readTokenFile(path.join(home, 'none'))).toThrow('cannot read --token-file');
  });

  it('with a token, every route needs it (the document too), and a wrong one is refused', async () => {
    const guarded = await startServe({ machines, base: noBase, listen: { host: '127.0.0.1', port: 0 }, token: TOKEN });
    try {
      for (const url of ['/api/v1/machines', '/api/v1/openapi.json', '/api/v1/machines/x/logs']) {
        const none = await call(guarded.url!, 'GET', url);
        expect([none.status, none.json.code]).toEqual([401, 'unauthorized']);
        expect(none.headers['www-authenticate']).toBe('Bearer');
      }
      const wrong = await call(guarded.url!, 'GET', '/api/v1/machines', {
        headers: { authorization: `Bearer ${TOKEN}x` },
      });
      expect(wrong.status).toBe(401);
      const right = await call(guarded.url!, 'GET', '/api/v1/machines', {
        headers: { authorization: `Bearer ${TOKEN}`, host: 'smolvm.example:8080' },
      });
      expect(right.status).toBe(200);
    } finally {
      await guarded.close();
    }
  });

  it('serves a unix socket created 0600, refuses a live one, replaces a stale one, and removes it on close', async () => {
    const socket = path.join(home, 'api.sock');
    const onSocket = await startServe({ machines, base: noBase, socket });
    try {
      expect(onSocket.url).toBeUndefined();
      expect(fs.statSync(socket).mode & 0o777).toBe(0o600);
      const agent = new Agent({ connect: { socketPath: socket } });
      try {
        const r = await call('http://localhost', 'GET', '/api/v1/machines', { dispatcher: agent });
        expect(r.status).toBe(200);
      } finally {
        await agent.close();
      }
      await expect(startServe({ machines, base: noBase, socket })).rejects.toThrow('in use by another server');
    } finally {
      await onSocket.close();
    }
    expect(fs.existsSync(socket)).toBe(false);
    fs.writeFileSync(socket, 'not a socket');
    await expect(startServe({ machines, base: noBase, socket })).rejects.toThrow('is not a socket');
    fs.rmSync(socket);
  });
});
