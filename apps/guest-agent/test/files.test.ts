import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { collect, rejection, startHarness, useHarnessAndTempDir } from './harness';

const t = useHarnessAndTempDir('smolvm-files-');

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const leftovers = () => fs.readdirSync(t.dir).filter((n) => n.endsWith('.part'));

describe('putFile', () => {
  it('writes 5 MB exactly, with the mode asked for minus special bits', async () => {
    const data = crypto.randomBytes(5 * 1024 * 1024 + 3);
    const dest = path.join(t.dir, 'f.bin');
    const res = await t.h.client.putFile(
      { path: dest, size: data.length, mode: 0o750 },
      Readable.from([data.subarray(0, 1000), data.subarray(1000)]),
    );
    expect(res).toEqual({ path: dest, bytes: data.length });
    expect(sha(fs.readFileSync(dest))).toBe(sha(data));
    expect(fs.statSync(dest).mode & 0o7777).toBe(0o750);
    expect(leftovers()).toEqual([]);
  });

  it('puts the file inside a directory destination under the given name', async () => {
    const res = await t.h.client.putFile(
      { path: t.dir, size: 2, mode: 0o644, name: 'x.txt' },
      Readable.from([Buffer.from('hi')]),
    );
    expect(res.path).toBe(path.join(t.dir, 'x.txt'));
    expect(fs.readFileSync(path.join(t.dir, 'x.txt'), 'utf8')).toBe('hi');
  });

  it('leaves the old file intact when the stream ends short', async () => {
    const dest = path.join(t.dir, 'keep.txt');
    fs.writeFileSync(dest, 'old');
    const err = await rejection(
      t.h.client.putFile({ path: dest, size: 100, mode: 0o644 }, Readable.from([Buffer.alloc(50)])),
    );
    expect(err.code).toBe('io-error');
    expect(err.message).toMatch(/after 50 of 100 bytes/);
    expect(fs.readFileSync(dest, 'utf8')).toBe('old');
    expect(leftovers()).toEqual([]);
  });

  it('refuses a stream that runs past the announced size', async () => {
    const dest = path.join(t.dir, 'keep.txt');
    fs.writeFileSync(dest, 'old');
    const err = await rejection(
      t.h.client.putFile({ path: dest, size: 10, mode: 0o644 }, Readable.from([Buffer.alloc(11)])),
    );
    expect(err.code).toBe('bad-request');
    expect(fs.readFileSync(dest, 'utf8')).toBe('old');
    expect(leftovers()).toEqual([]);
  });

  it('fails, leaving the old file, when the source errors midway (a client that went away), without an unhandled error', async () => {
    const dest = path.join(t.dir, 'keep.txt');
    fs.writeFileSync(dest, 'old');
    const source = new PassThrough();
    const put = rejection(t.h.client.putFile({ path: dest, size: 1024 * 1024, mode: 0o644 }, source));
    source.write(Buffer.alloc(64 * 1024));
    setTimeout(() => source.destroy(new Error('the client went away')), 50);
    expect(await put).toBeInstanceOf(Error);
    expect(fs.readFileSync(dest, 'utf8')).toBe('old');
    expect(leftovers()).toEqual([]);
  });

  it('reports a missing directory as not-found', async () => {
    const err = await rejection(
      t.h.client.putFile(
        { path: path.join(t.dir, 'no/such/file'), size: 1, mode: 0o644 },
        Readable.from([Buffer.from('x')]),
      ),
    );
    expect(err.code).toBe('not-found');
  });

  it('refuses sizes at the 4 GiB cap before reading anything', async () => {
    const err = await rejection(
      t.h.client.putFile({ path: path.join(t.dir, 'big'), size: 4 * 1024 ** 3, mode: 0o644 }, new PassThrough()),
    );
    expect(err.code).toBe('bad-request');
    expect(fs.readdirSync(t.dir)).toEqual([]);
  });
});

describe('getFile', () => {
  it('streams a file with its size and mode', async () => {
    const data = crypto.randomBytes(3 * 1024 * 1024 + 17);
    const src = path.join(t.dir, 'src.bin');
    fs.writeFileSync(src, data, { mode: 0o640 });
    const got = await t.h.client.getFile({ path: src, maxBytes: 4 * 1024 ** 3 });
    expect(got.size).toBe(data.length);
    expect(got.mode).toBe(0o640);
    expect(sha(await collect(got.data))).toBe(sha(data));
  });

  it('sends an empty file as an empty stream', async () => {
    fs.writeFileSync(path.join(t.dir, 'empty'), '');
    const got = await t.h.client.getFile({ path: path.join(t.dir, 'empty'), maxBytes: 10 });
    expect(got.size).toBe(0);
    expect((await collect(got.data)).length).toBe(0);
  });

  it('refuses a file at or above the cap, a directory and a missing file', async () => {
    fs.writeFileSync(path.join(t.dir, 'ten'), Buffer.alloc(10));
    const big = await rejection(t.h.client.getFile({ path: path.join(t.dir, 'ten'), maxBytes: 10 }));
    expect(big.code).toBe('too-large');
    expect(big.message).toMatch(/exceeding the byte cap/);
    expect((await rejection(t.h.client.getFile({ path: t.dir, maxBytes: 10 }))).code).toBe('is-a-directory');
    expect((await rejection(t.h.client.getFile({ path: path.join(t.dir, 'nope'), maxBytes: 10 }))).code).toBe(
      'not-found',
    );
  });
});

describe('a dropped connection mid-upload', () => {
  it('removes the staging file and keeps the old destination', async () => {
    const own = await startHarness();
    const dest = path.join(t.dir, 'keep.txt');
    fs.writeFileSync(dest, 'old');
    const source = new PassThrough();
    const put = own.client.putFile({ path: dest, size: 10 * 1024 * 1024, mode: 0o644 }, source);
    put.catch(() => undefined);
    source.write(Buffer.alloc(1024 * 1024));
    for (let i = 0; i < 50 && leftovers().length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(leftovers()).toHaveLength(1);
    own.client.close();
    await expect(put).rejects.toThrow();
    for (let i = 0; i < 100 && leftovers().length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(leftovers()).toEqual([]);
    expect(fs.readFileSync(dest, 'utf8')).toBe('old');
    await own.close();
  });
});

describe('installFile', () => {
  it('copies a file already in the guest atomically, checking its size and refusing links', async () => {
    const src = path.join(t.dir, 'staged');
    const data = crypto.randomBytes(2 * 1024 * 1024 + 5);
    fs.writeFileSync(src, data);
    const dest = path.join(t.dir, 'out');
    fs.writeFileSync(dest, 'old');
    expect(await t.h.client.installFile({ source: src, path: dest, size: data.length, mode: 0o640 })).toEqual({
      path: dest,
      bytes: data.length,
    });
    expect(sha(fs.readFileSync(dest))).toBe(sha(data));
    expect(fs.statSync(dest).mode & 0o777).toBe(0o640);
    const wrongSize = await rejection(t.h.client.installFile({ source: src, path: dest, size: 3, mode: 0o644 }));
    expect(wrongSize.code).toBe('bad-request');
    fs.symlinkSync(src, path.join(t.dir, 'link'));
    expect(
      (
        await rejection(
          t.h.client.installFile({ source: path.join(t.dir, 'link'), path: dest, size: data.length, mode: 0o644 }),
        )
      ).code,
    ).toBe('io-error');
    expect(sha(fs.readFileSync(dest))).toBe(sha(data));
    expect(leftovers()).toEqual([]);
  });

  it('closes the source when the destination is refused (an open file keeps its share from being unmounted)', async () => {
    const src = path.join(t.dir, 'staged');
    fs.writeFileSync(src, 'data');
    const target = (fd: string) => {
      try {
        return fs.readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return undefined; // closed meanwhile (e.g. the directory listing's own descriptor)
      }
    };
    const opened = () => fs.readdirSync('/proc/self/fd').filter((fd) => target(fd) === src).length;
    for (const dest of [path.join(t.dir, 'no', 'such', 'dir', 'f'), t.dir]) {
      await rejection(t.h.client.installFile({ source: src, path: dest, size: 4, mode: 0o644 }));
    }
    // The stream closes its descriptor asynchronously after destroy().
    for (let i = 0; i < 50 && opened() > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(opened()).toBe(0);
  });
});
