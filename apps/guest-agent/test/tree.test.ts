import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import * as tar from 'tar';
import { AgentRequestError } from '@smolvm/agent-protocol';
import { collect, startHarness, type Harness } from './harness';

let h: Harness;
let dir: string;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-tree-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function makeTree(root: string): void {
  fs.mkdirSync(path.join(root, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(root, 'a.txt'), 'a\n');
  fs.writeFileSync(path.join(root, 'sub', 'b.bin'), Buffer.alloc(300_000, 9), { mode: 0o750 });
  fs.symlinkSync('a.txt', path.join(root, 'link'));
}

function pack(cwd: string, name: string): Readable {
  return tar.c({ cwd, portable: true }, [name]) as unknown as Readable;
}

async function rejection(p: Promise<unknown>): Promise<AgentRequestError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(AgentRequestError);
  return err as AgentRequestError;
}

const parts = () => fs.readdirSync(dir).filter((n) => n.endsWith('.part'));

describe('putTree', () => {
  it('extracts a directory into an existing directory under its name, links and modes kept', async () => {
    const src = path.join(dir, 'src');
    makeTree(path.join(src, 'proj'));
    fs.mkdirSync(path.join(dir, 'dest'));
    const res = await h.client.putTree({ path: path.join(dir, 'dest'), name: 'proj', maxBytes: 10 * 1024 * 1024 }, pack(src, 'proj'));
    expect(res.path).toBe(path.join(dir, 'dest', 'proj'));
    const out = path.join(dir, 'dest', 'proj');
    expect(fs.readFileSync(path.join(out, 'a.txt'), 'utf8')).toBe('a\n');
    expect(fs.readFileSync(path.join(out, 'sub', 'b.bin')).equals(Buffer.alloc(300_000, 9))).toBe(true);
    expect(fs.statSync(path.join(out, 'sub', 'b.bin')).mode & 0o777).toBe(0o750);
    expect(fs.readlinkSync(path.join(out, 'link'))).toBe('a.txt');
    expect(parts()).toEqual([]);
  });

  it('creates a new directory at a path that does not exist yet; refuses one that exists', async () => {
    const src = path.join(dir, 'src');
    makeTree(path.join(src, 'proj'));
    expect((await h.client.putTree({ path: path.join(dir, 'copy'), name: 'proj', maxBytes: 10 * 1024 * 1024 }, pack(src, 'proj'))).path).toBe(path.join(dir, 'copy'));
    expect(fs.readFileSync(path.join(dir, 'copy', 'a.txt'), 'utf8')).toBe('a\n');
    // `copy` is a directory now, so the next copy would land in copy/proj: fine once, then refused.
    await h.client.putTree({ path: path.join(dir, 'copy'), name: 'proj', maxBytes: 10 * 1024 * 1024 }, pack(src, 'proj'));
    expect(fs.existsSync(path.join(dir, 'copy', 'proj', 'a.txt'))).toBe(true);
    const archive = await collect(pack(src, 'proj'));
    const again = await rejection(h.client.putTree({ path: path.join(dir, 'copy'), name: 'proj', maxBytes: 10 * 1024 * 1024 }, Readable.from([archive])));
    expect(again.code).toBe('bad-request');
    expect(again.message).toContain('already exists');
  });

  it('leaves nothing when the archive is cut short or runs past the cap', async () => {
    const src = path.join(dir, 'src');
    makeTree(path.join(src, 'proj'));
    const whole = await collect(pack(src, 'proj'));
    const cut = await rejection(h.client.putTree({ path: path.join(dir, 'cut'), name: 'proj', maxBytes: 10 * 1024 * 1024 }, Readable.from([whole.subarray(0, 100_000)])));
    expect(cut.code).toBe('io-error');
    const big = await rejection(h.client.putTree({ path: path.join(dir, 'big'), name: 'proj', maxBytes: 50_000 }, Readable.from([whole])));
    expect(big.code).toBe('too-large');
    expect(fs.readdirSync(dir).sort()).toEqual(['src']);
  });
});

describe('getTree', () => {
  it('streams a directory as tar with its name on top', async () => {
    makeTree(path.join(dir, 'proj'));
    const { data, done } = await h.client.getTree({ path: path.join(dir, 'proj'), maxBytes: 10 * 1024 * 1024 });
    const out = path.join(dir, 'out');
    fs.mkdirSync(out);
    await new Promise<void>((resolve, reject) => data.pipe(tar.x({ cwd: out, strict: true })).on('finish', resolve).on('error', reject));
    expect((await done).bytes).toBeGreaterThan(300_000);
    expect(fs.readFileSync(path.join(out, 'proj', 'sub', 'b.bin')).length).toBe(300_000);
    expect(fs.readlinkSync(path.join(out, 'proj', 'link'))).toBe('a.txt');
  });

  it('fails past the byte cap, and for a file or a missing path', async () => {
    makeTree(path.join(dir, 'proj'));
    const { data, done } = await h.client.getTree({ path: path.join(dir, 'proj'), maxBytes: 10_000 });
    data.resume();
    const err = await done.then(() => undefined, (e: unknown) => e);
    expect((err as AgentRequestError).code).toBe('too-large');
    const notDir = await h.client.getTree({ path: path.join(dir, 'proj', 'a.txt'), maxBytes: 10_000 });
    expect(((await notDir.done.catch((e: unknown) => e)) as AgentRequestError).code).toBe('bad-request');
    const missing = await h.client.getTree({ path: path.join(dir, 'nope'), maxBytes: 10_000 });
    expect(((await missing.done.catch((e: unknown) => e)) as AgentRequestError).code).toBe('not-found');
  });
});
