import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import * as tar from 'tar';
import { AgentRequestError } from '@smolvm/agent-protocol';
import { collect, rejection, useHarnessAndTempDir } from './harness';

const t = useHarnessAndTempDir('smolvm-tree-');

function makeTree(root: string): void {
  fs.mkdirSync(path.join(root, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(root, 'a.txt'), 'a\n');
  fs.writeFileSync(path.join(root, 'sub', 'b.bin'), Buffer.alloc(300_000, 9), { mode: 0o750 });
  fs.symlinkSync('a.txt', path.join(root, 'link'));
}

function pack(cwd: string, name: string): Readable {
  return tar.c({ cwd, portable: true }, [name]) as unknown as Readable;
}

const parts = () => fs.readdirSync(t.dir).filter((n) => n.endsWith('.part'));

describe('putTree', () => {
  it('extracts a directory into an existing directory under its name, links and modes kept', async () => {
    const src = path.join(t.dir, 'src');
    makeTree(path.join(src, 'proj'));
    fs.mkdirSync(path.join(t.dir, 'dest'));
    const res = await t.h.client.putTree(
      { path: path.join(t.dir, 'dest'), name: 'proj', maxBytes: 10 * 1024 * 1024 },
      pack(src, 'proj'),
    );
    expect(res.path).toBe(path.join(t.dir, 'dest', 'proj'));
    const out = path.join(t.dir, 'dest', 'proj');
    expect(fs.readFileSync(path.join(out, 'a.txt'), 'utf8')).toBe('a\n');
    expect(fs.readFileSync(path.join(out, 'sub', 'b.bin')).equals(Buffer.alloc(300_000, 9))).toBe(true);
    expect(fs.statSync(path.join(out, 'sub', 'b.bin')).mode & 0o777).toBe(0o750);
    expect(fs.readlinkSync(path.join(out, 'link'))).toBe('a.txt');
    expect(parts()).toEqual([]);
  });

  it('creates a new directory at a path that does not exist yet; refuses one that exists', async () => {
    const src = path.join(t.dir, 'src');
    makeTree(path.join(src, 'proj'));
    expect(
      (
        await t.h.client.putTree(
          { path: path.join(t.dir, 'copy'), name: 'proj', maxBytes: 10 * 1024 * 1024 },
          pack(src, 'proj'),
        )
      ).path,
    ).toBe(path.join(t.dir, 'copy'));
    expect(fs.readFileSync(path.join(t.dir, 'copy', 'a.txt'), 'utf8')).toBe('a\n');
    // `copy` is a directory now, so the next copy would land in copy/proj: fine once, then refused.
    await t.h.client.putTree(
      { path: path.join(t.dir, 'copy'), name: 'proj', maxBytes: 10 * 1024 * 1024 },
      pack(src, 'proj'),
    );
    expect(fs.existsSync(path.join(t.dir, 'copy', 'proj', 'a.txt'))).toBe(true);
    const archive = await collect(pack(src, 'proj'));
    const again = await rejection(
      t.h.client.putTree(
        { path: path.join(t.dir, 'copy'), name: 'proj', maxBytes: 10 * 1024 * 1024 },
        Readable.from([archive]),
      ),
    );
    expect(again.code).toBe('bad-request');
    expect(again.message).toContain('already exists');
  });

  it('leaves nothing when the archive is cut short or runs past the cap', async () => {
    const src = path.join(t.dir, 'src');
    makeTree(path.join(src, 'proj'));
    const whole = await collect(pack(src, 'proj'));
    const cut = await rejection(
      t.h.client.putTree(
        { path: path.join(t.dir, 'cut'), name: 'proj', maxBytes: 10 * 1024 * 1024 },
        Readable.from([whole.subarray(0, 100_000)]),
      ),
    );
    expect(cut.code).toBe('io-error');
    const big = await rejection(
      t.h.client.putTree({ path: path.join(t.dir, 'big'), name: 'proj', maxBytes: 50_000 }, Readable.from([whole])),
    );
    expect(big.code).toBe('too-large');
    expect(fs.readdirSync(t.dir).sort()).toEqual(['src']);
  });
});

describe('getTree', () => {
  it('streams a directory as tar with its name on top', async () => {
    makeTree(path.join(t.dir, 'proj'));
    const { data, done } = await t.h.client.getTree({ path: path.join(t.dir, 'proj'), maxBytes: 10 * 1024 * 1024 });
    const out = path.join(t.dir, 'out');
    fs.mkdirSync(out);
    await new Promise<void>((resolve, reject) =>
      data
        .pipe(tar.x({ cwd: out, strict: true }))
        .on('finish', resolve)
        .on('error', reject),
    );
    expect((await done).bytes).toBeGreaterThan(300_000);
    expect(fs.readFileSync(path.join(out, 'proj', 'sub', 'b.bin')).length).toBe(300_000);
    expect(fs.readlinkSync(path.join(out, 'proj', 'link'))).toBe('a.txt');
  });

  it('fails past the byte cap, and for a file or a missing path', async () => {
    makeTree(path.join(t.dir, 'proj'));
    const { data, done } = await t.h.client.getTree({ path: path.join(t.dir, 'proj'), maxBytes: 10_000 });
    data.resume();
    const err = await done.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as AgentRequestError).code).toBe('too-large');
    const notDir = await t.h.client.getTree({ path: path.join(t.dir, 'proj', 'a.txt'), maxBytes: 10_000 });
    expect(((await notDir.done.catch((e: unknown) => e)) as AgentRequestError).code).toBe('bad-request');
    const missing = await t.h.client.getTree({ path: path.join(t.dir, 'nope'), maxBytes: 10_000 });
    expect(((await missing.done.catch((e: unknown) => e)) as AgentRequestError).code).toBe('not-found');
  });
});
