// `smolvm serve start` with real VMs: one machine shared by every route test (one boot), driven
// by a real HTTP client (undici), SSE parsed by a real parser (eventsource-parser), and every
// response checked against the OpenAPI document the server serves.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { request } from 'undici';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import * as tar from 'tar';
import { featureImage } from '../../../tools/fixtures/images';
import { openApiChecker, type OpenApiChecker } from '../../../tools/fixtures/openapi-check';
import { BUSYBOX_BASE, e2eSetup, smolvm, startSmolvm, type E2eSetup } from './helpers';

jest.setTimeout(600_000);

let setup: E2eSetup;
let server: { done: Promise<{ status: number | null; stdout: string; stderr: string }>; pid: number };
let base: string;
let checker: OpenApiChecker;
let work: string;
const NAME = 'api';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: Record<string, unknown> & { error?: string; code?: string };
}

async function call(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await request(base + url, {
    method: method as 'GET',
    ...(body !== undefined
      ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } }
      : { headers }),
  });
  const text = await res.body.text();
  checker.check(method, url, res.statusCode, res.headers['content-type'] as string | undefined, text);
  const isJson = String(res.headers['content-type'] ?? '').startsWith('application/json');
  return { status: res.statusCode, headers: res.headers, text, json: isJson && text ? JSON.parse(text) : {} };
}

/** Opens an SSE response and hands each parsed event to `onEvent` until the stream ends (or `signal` aborts it). */
async function events(
  method: string,
  url: string,
  body: unknown,
  onEvent: (e: EventSourceMessage) => void,
  signal?: AbortSignal,
): Promise<{ status: number }> {
  const res = await request(base + url, {
    method: method as 'POST',
    ...(body !== undefined
      ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json', accept: 'text/event-stream' } }
      : { headers: { accept: 'text/event-stream' } }),
    ...(signal ? { signal } : {}),
  });
  checker.check(method, url, res.statusCode, res.headers['content-type'] as string | undefined, '');
  const parser = createParser({ onEvent });
  try {
    for await (const chunk of res.body) parser.feed(chunk.toString());
  } catch (err) {
    if (!signal?.aborted) throw err;
  }
  return { status: res.statusCode };
}

async function exec(command: string[], extra: Record<string, unknown> = {}): Promise<Reply> {
  return call('POST', `/api/v1/machines/${NAME}/exec`, { command, ...extra });
}

async function until(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function sha(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

beforeAll(async () => {
  setup = await e2eSetup('smolvm-serve-e2e-', { 'smolvm-test/feature:latest': featureImage() });
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-serve-work-'));
  server = startSmolvm(['serve', 'start', '--listen', '127.0.0.1:0'], setup.env);
  const started = Date.now();
  let url: string | undefined;
  while (!url) {
    if (Date.now() - started > 60_000) throw new Error('serve start did not listen');
    await new Promise((r) => setTimeout(r, 100));
    url = readListening(server.pid);
  }
  base = url;
  const doc = await request(`${base}/api/v1/openapi.json`);
  checker = await openApiChecker((await doc.body.json()) as object);
});

/** The port the server listens on (asked for port 0), from its socket: startSmolvm hands stdout over only at exit. */
function readListening(pid: number): string | undefined {
  const inodes = new Set<string>();
  try {
    for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
      const link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m) inodes.add(m[1]);
    }
  } catch {
    return undefined;
  }
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length > 9 && cols[3] === '0A' && inodes.has(cols[9]))
      return `http://127.0.0.1:${parseInt(cols[1].split(':')[1], 16)}`;
  }
  return undefined;
}

afterAll(async () => {
  if (server) {
    try {
      process.kill(server.pid, 'SIGKILL');
    } catch {
      // Already gone (the shutdown test).
    }
    const ended = await server.done;
    // What the server said, for a failure above (it runs detached from jest's output).
    if (ended.stderr) process.stderr.write(`smolvm serve stderr:\n${ended.stderr}\n`);
  }
  if (setup) {
    smolvm(['machine', 'delete', NAME, '-f'], setup.env);
    expect(setup.qemus()).toEqual([]);
    await setup.close();
  }
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('machines over HTTP', () => {
  it('creates a machine from an image (pulled, pinned) and pulls it again as SSE, then deletes it', async () => {
    const ref = setup.refs['smolvm-test/feature:latest'];
    const created = await call('POST', '/api/v1/machines', {
      name: 'img',
      image: ref,
      cpus: 1,
      memory: 256,
      storage: 1,
      overlay: 1,
    });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ name: 'img', state: 'created', image: ref });
    const seen: string[] = [];
    let done: Record<string, unknown> | undefined;
    await events('POST', '/api/v1/machines/img/images/pull', {}, (e) => {
      seen.push(e.event ?? 'message');
      if (e.event === 'done') done = JSON.parse(e.data);
    });
    expect(seen[seen.length - 1]).toBe('done');
    expect(done?.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const plain = await call('POST', '/api/v1/machines/img/images/pull', {});
    expect(plain.json).toEqual(done);
    const taken = await call('POST', '/api/v1/machines', { name: 'img' });
    expect([taken.status, taken.json.code]).toEqual([409, 'conflict']);
    expect((await call('DELETE', '/api/v1/machines/img')).status).toBe(204);
    expect((await call('GET', '/api/v1/machines/img')).status).toBe(404);
  });

  it('creates, starts (init runs) and shows a bare machine; start again is a no-op', async () => {
    const created = await call('POST', '/api/v1/machines', {
      name: NAME,
      cpus: 1,
      memory: '256',
      storage: 1,
      overlay: 1,
      env: ['GREETING=hi'],
      init: ['echo init-ran > /workspace/init'],
    });
    expect(created.status).toBe(201);
    // Pinned to the base image bare VMs run on (here the configured SMOLVM_BASE_IMAGE), as `machine create` pins it.
    expect(created.json.image).toContain(BUSYBOX_BASE);
    const notRunning = await exec(['true']);
    expect([notRunning.status, notRunning.json.code]).toEqual([409, 'not-running']);
    const started = await call('POST', `/api/v1/machines/${NAME}/start`);
    expect(started.status).toBe(200);
    expect(started.json).toMatchObject({ alreadyRunning: false, machine: { name: NAME, state: 'running' } });
    expect((await call('POST', `/api/v1/machines/${NAME}/start`)).json.alreadyRunning).toBe(true);
    const list = await call('GET', '/api/v1/machines');
    expect(list.json.machines).toEqual([
      expect.objectContaining({ name: NAME, state: 'running', cpus: 1, memoryMiB: 256 }),
    ]);
    expect((await exec(['cat', '/workspace/init'])).json.stdout).toBe('init-ran\n');
  });

  it('exec: output, exit codes, env, workdir, a missing command (127) and a timeout', async () => {
    const r = await exec(['sh', '-c', 'echo "$GREETING $EXTRA"; pwd; echo oops >&2; exit 3'], {
      env: { EXTRA: 'there' },
      workdir: '/tmp',
    });
    expect(r.json).toEqual({
      exitCode: 3,
      signal: null,
      stdout: 'hi there\n/tmp\n',
      stderr: 'oops\n',
      timedOut: false,
      truncated: false,
    });
    const missing = await exec(['/no/such/cmd']);
    expect(missing.json).toMatchObject({ exitCode: 127, stderr: '/no/such/cmd: no such file or directory\n' });
    const slow = await exec(['sleep', '60'], { timeoutSeconds: 1 });
    expect(slow.json).toMatchObject({ timedOut: true, exitCode: 137, signal: 'SIGKILL' });
  });

  it('runs 100 concurrent exec requests on one machine, each with its own output', async () => {
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => exec(['sh', '-c', `echo n${i}; echo e${i} >&2; exit ${i % 7}`])),
    );
    const wrong = results
      .map((r, i) => ({ i, status: r.status, json: r.json }))
      .filter(
        ({ i, status, json }) =>
          status !== 200 || json.stdout !== `n${i}\n` || json.stderr !== `e${i}\n` || json.exitCode !== i % 7,
      );
    expect(wrong).toEqual([]);
  });

  it('exec/stream sends stdout, stderr and exit events', async () => {
    const got: Array<[string, string]> = [];
    const res = await events(
      'POST',
      `/api/v1/machines/${NAME}/exec/stream`,
      { command: ['sh', '-c', 'echo one; echo two >&2; printf "three\\nfour\\n"; exit 5'] },
      (e) => got.push([e.event ?? '', e.data]),
    );
    expect(res.status).toBe(200);
    // Each event carries a chunk of output as it came; together they are the output.
    expect(
      got
        .filter(([e]) => e === 'stdout')
        .map(([, d]) => d)
        .join(''),
    ).toBe('one\nthree\nfour\n');
    expect(
      got
        .filter(([e]) => e === 'stderr')
        .map(([, d]) => d)
        .join(''),
    ).toBe('two\n');
    expect(got[got.length - 1]).toEqual(['exit', '{"exitCode":5,"signal":null}']);
  });

  it('a client that disconnects mid-stream takes the guest process with it', async () => {
    const abort = new AbortController();
    let pidLine = '';
    await events(
      'POST',
      `/api/v1/machines/${NAME}/exec/stream`,
      { command: ['sh', '-c', 'echo $$; exec sleep 600'] },
      (e) => {
        if (e.event === 'stdout' && !pidLine) {
          pidLine = e.data.trim();
          abort.abort();
        }
      },
      abort.signal,
    );
    expect(pidLine).toMatch(/^\d+$/);
    await until(
      'the guest process to be killed',
      async () =>
        (await exec(['sh', '-c', `kill -0 ${pidLine} 2>/dev/null && echo alive || echo gone`])).json.stdout ===
        'gone\n',
    );
  });
});

describe('files over HTTP', () => {
  const file = (p: string) => `/api/v1/machines/${NAME}/files${p}`;

  it('uploads and downloads 100 MB with equal sha256', async () => {
    const src = path.join(work, 'big.bin');
    fs.writeFileSync(src, crypto.randomBytes(100 * 1024 * 1024));
    const up = await request(base + file('/workspace/big.bin'), {
      method: 'PUT',
      body: fs.createReadStream(src),
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(fs.statSync(src).size) },
    });
    const upText = await up.body.text();
    checker.check('PUT', file('/workspace/big.bin'), up.statusCode, up.headers['content-type'] as string, upText);
    expect(JSON.parse(upText)).toEqual({ path: '/workspace/big.bin', bytes: 100 * 1024 * 1024 });
    expect((await exec(['sha256sum', '/workspace/big.bin'])).json.stdout).toBe(`${sha(src)}  /workspace/big.bin\n`);
    const down = await request(base + file('/workspace/big.bin'));
    checker.check('GET', file('/workspace/big.bin'), down.statusCode, down.headers['content-type'] as string, '');
    expect(down.headers['content-length']).toBe(String(100 * 1024 * 1024));
    const back = path.join(work, 'back.bin');
    await pipeline(down.body, fs.createWriteStream(back));
    expect(sha(back)).toBe(sha(src));
    await exec(['rm', '/workspace/big.bin']);
    fs.rmSync(src);
    fs.rmSync(back);
  });

  it('a killed upload leaves the old file and no staging file', async () => {
    const put = (body: Readable | string, length: number, signal?: AbortSignal) =>
      request(base + file('/workspace/target'), {
        method: 'PUT',
        body,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(length) },
        ...(signal ? { signal } : {}),
      });
    const first = await put('previous\n', 9);
    checker.check(
      'PUT',
      file('/workspace/target'),
      first.statusCode,
      first.headers['content-type'] as string,
      await first.body.text(),
    );
    const abort = new AbortController();
    let sent = 0;
    const endless = new Readable({
      read() {
        sent += 1024 * 1024;
        if (sent > 32 * 1024 * 1024) abort.abort();
        else this.push(Buffer.alloc(1024 * 1024, 0x61));
      },
    });
    await expect(put(endless, 600 * 1024 * 1024, abort.signal)).rejects.toThrow();
    await until(
      'the staging file to go',
      async () => !(await exec(['ls', '-a', '/workspace'])).json.stdout?.toString().includes('.part'),
    );
    expect((await exec(['cat', '/workspace/target'])).json.stdout).toBe('previous\n');
  });

  it("says a missing directory without the guest's internals, and refuses a bad path", async () => {
    const r = await request(base + file('/workspace/no/such/dir/f'), {
      method: 'PUT',
      body: 'x',
      headers: { 'content-type': 'application/octet-stream', 'content-length': '1' },
    });
    const text = await r.body.text();
    checker.check('PUT', file('/workspace/no/such/dir/f'), r.statusCode, r.headers['content-type'] as string, text);
    expect(r.statusCode).toBe(404);
    expect(JSON.parse(text)).toEqual({
      error:
        'api:/workspace/no/such/dir/f: no such file or directory; check the path (the parent directory must exist)',
      code: 'not-found',
    });
    const missing = await call('GET', file('/workspace/nothing-here'));
    expect([missing.status, missing.json.code]).toEqual([404, 'not-found']);
    // The slash encoded, or the client would resolve the dots itself before sending.
    const dots = await call('GET', file('/workspace/..%2Fetc/passwd'));
    expect([dots.status, dots.json.code]).toEqual([400, 'invalid-path']);
  });

  it('moves directories as tar both ways', async () => {
    const tree = path.join(work, 'proj');
    fs.mkdirSync(path.join(tree, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(tree, 'a.txt'), 'a\n');
    fs.writeFileSync(path.join(tree, 'sub', 'b.bin'), crypto.randomBytes(256 * 1024));
    const archive = tar.c({ cwd: work, portable: true }, ['proj']) as unknown as Readable;
    const up = await request(base + file('/workspace/proj'), {
      method: 'PUT',
      body: archive,
      headers: { 'content-type': 'application/x-tar' },
    });
    const upText = await up.body.text();
    checker.check('PUT', file('/workspace/proj'), up.statusCode, up.headers['content-type'] as string, upText);
    expect(up.statusCode).toBe(200);
    expect((await exec(['cat', '/workspace/proj/a.txt'])).json.stdout).toBe('a\n');
    const down = await request(base + file('/workspace/proj'));
    checker.check('GET', file('/workspace/proj'), down.statusCode, down.headers['content-type'] as string, '');
    expect(down.headers['content-type']).toBe('application/x-tar');
    const out = path.join(work, 'out');
    fs.mkdirSync(out);
    await pipeline(down.body, tar.x({ cwd: out, strict: true }) as unknown as NodeJS.WritableStream);
    expect(sha(path.join(out, 'proj', 'sub', 'b.bin'))).toBe(sha(path.join(tree, 'sub', 'b.bin')));
  });
});

describe('snapshots over HTTP', () => {
  it('snapshots the running machine; a machine made from it resumes its files and processes, and the snapshot goes once unused', async () => {
    // A process of its own session, so it outlives the exec that started it.
    const started = await exec([
      'sh',
      '-c',
      'echo kept > /tmp/kept; setsid sh -c "while :; do sleep 1; done" </dev/null >/dev/null 2>&1 & echo $! > /tmp/loop.pid',
    ]);
    expect(started.json.exitCode).toBe(0);
    const snap = await call('POST', `/api/v1/machines/${NAME}/snapshots`, { tag: 'warm' });
    expect([snap.status, snap.json]).toEqual([
      201,
      expect.objectContaining({ id: `${NAME}:warm`, machine: NAME, running: true, dependents: [] }),
    ]);
    const copy = await call('POST', '/api/v1/machines', { name: 'api-copy', fromSnapshot: `${NAME}:warm` });
    expect([copy.status, copy.json]).toEqual([201, expect.objectContaining({ name: 'api-copy', state: 'created' })]);
    try {
      const start = await call('POST', '/api/v1/machines/api-copy/start');
      expect([start.status, start.json.code]).toEqual([200, undefined]);
      const check = ['sh', '-c', 'cat /tmp/kept; kill -0 "$(cat /tmp/loop.pid)" && echo alive'];
      const inCopy = await call('POST', '/api/v1/machines/api-copy/exec', { command: check });
      expect(inCopy.json).toMatchObject({ exitCode: 0, stdout: 'kept\nalive\n' });
      // The copy's own writes stay its own.
      await call('POST', '/api/v1/machines/api-copy/exec', { command: ['sh', '-c', 'echo copy > /tmp/kept'] });
      expect((await exec(check)).json).toMatchObject({ exitCode: 0, stdout: 'kept\nalive\n' });
      const inUse = await call('DELETE', `/api/v1/snapshots/${NAME}%3Awarm`);
      expect([inUse.status, inUse.json.code]).toEqual([409, 'conflict']);
      // A fork: snapshot and started copy in one call.
      const fork = await call('POST', `/api/v1/machines/${NAME}/fork`, { names: ['api-fork'] });
      expect([fork.status, fork.json.machines]).toEqual([
        201,
        [expect.objectContaining({ name: 'api-fork', state: 'running' })],
      ]);
      expect((await call('POST', '/api/v1/machines/api-fork/exec', { command: check })).json).toMatchObject({
        exitCode: 0,
        stdout: 'kept\nalive\n',
      });
      expect((await call('DELETE', '/api/v1/machines/api-fork?force=true')).status).toBe(204);
      expect((await call('DELETE', `/api/v1/snapshots/${(fork.json.snapshot as { id: string }).id}`)).status).toBe(204);
    } finally {
      await call('DELETE', '/api/v1/machines/api-copy?force=true');
      await call('DELETE', '/api/v1/machines/api-fork?force=true');
    }
    expect((await call('DELETE', `/api/v1/snapshots/${NAME}:warm`)).status).toBe(204);
    expect((await call('GET', '/api/v1/snapshots')).json).toEqual({ snapshots: [] });
  });
});

describe('ephemeral runs', () => {
  it('POST /runs leaves an ephemeral machine running; stop removes it with everything', async () => {
    const run = await call('POST', '/api/v1/runs', { cpus: 1, memory: 256, init: ['echo ready > /tmp/ready'] });
    expect([run.status, run.json.error]).toEqual([201, undefined]);
    expect(run.json).toMatchObject({
      state: 'running',
      ephemeral: true,
      name: expect.stringMatching(/^run-[0-9a-f]{8}$/),
    });
    const name = String(run.json.name);
    const r = await call('POST', `/api/v1/machines/${name}/exec`, { command: ['cat', '/tmp/ready'] });
    expect(r.json.stdout).toBe('ready\n');
    expect((await call('POST', `/api/v1/machines/${name}/stop`, {})).json).toEqual({
      name,
      wasRunning: true,
      removed: true,
    });
    expect((await call('GET', `/api/v1/machines/${name}`)).status).toBe(404);
    expect(fs.existsSync(path.join(setup.home, 'data', 'machines', name))).toBe(false);
  });
});

describe('logs, stop and shutdown', () => {
  it('streams the machine log, following it as the machine stops and starts', async () => {
    const lines: string[] = [];
    await events('GET', `/api/v1/machines/${NAME}/logs?tail=50`, undefined, (e) => lines.push(e.data));
    expect(lines.some((l) => l.includes('init: echo init-ran > /workspace/init'))).toBe(true);
    const abort = new AbortController();
    const followed: string[] = [];
    const following = events(
      'GET',
      `/api/v1/machines/${NAME}/logs?follow=true&tail=0`,
      undefined,
      (e) => {
        followed.push(e.data);
        if (e.data.includes('exited: stopped')) abort.abort();
      },
      abort.signal,
    );
    await new Promise((r) => setTimeout(r, 500));
    const stop = await call('POST', `/api/v1/machines/${NAME}/stop`, { timeoutSeconds: 60 });
    expect(stop.json).toEqual({ name: NAME, wasRunning: true, removed: false });
    await Promise.race([
      following,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`no 'exited' line in ${JSON.stringify(followed)}`)), 30_000),
      ),
    ]);
    const running = await call('DELETE', `/api/v1/machines/${NAME}`);
    expect(running.status).toBe(204);
  });

  it('shuts down on SIGTERM: an open stream gets a shutdown event, the machine keeps running', async () => {
    expect(
      (await call('POST', '/api/v1/machines', { name: NAME, cpus: 1, memory: 256, storage: 1, overlay: 1 })).status,
    ).toBe(201);
    const started = await call('POST', `/api/v1/machines/${NAME}/start`);
    expect([started.status, started.json.error]).toEqual([200, undefined]);
    const got: string[] = [];
    const streaming = events(
      'POST',
      `/api/v1/machines/${NAME}/exec/stream`,
      { command: ['sh', '-c', 'echo up; exec sleep 600'] },
      (e) => {
        got.push(e.event ?? '');
        if (e.event === 'stdout') process.kill(server.pid, 'SIGTERM');
      },
    );
    await streaming;
    expect(got).toContain('shutdown');
    const ended = await server.done;
    expect(ended.status).toBe(0);
    expect(ended.stdout).toMatch(/^listening on http:\/\/127\.0\.0\.1:\d+\n$/);
    const status = smolvm(['machine', 'status', '--name', NAME, '--json'], setup.env);
    expect(JSON.parse(status.stdout).state).toBe('running');
    expect(checker.seen.size).toBeGreaterThan(12);
  });
});
