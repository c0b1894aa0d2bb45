import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { resetInbox, stageUpload } from '../src/inbox';

let dir: string;
beforeEach(() => {
  dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-inbox-')), 'inbox');
  resetInbox(dir);
});
afterEach(() => fs.rmSync(path.dirname(dir), { recursive: true, force: true }));

describe('stageUpload', () => {
  it('stages exactly the announced bytes in a private file, removed on request', async () => {
    const staged = await stageUpload(dir, Readable.from([Buffer.from('hello '), Buffer.from('world')]), { size: 11 });
    expect(fs.readFileSync(path.join(dir, staged.name), 'utf8')).toBe('hello world');
    expect(fs.statSync(path.join(dir, staged.name)).mode & 0o777).toBe(0o600);
    staged.remove();
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('leaves nothing when the stream ends short or runs long', async () => {
    await expect(stageUpload(dir, Readable.from([Buffer.alloc(5)]), { size: 10 })).rejects.toThrow(
      'the transfer ended after 5 of 10 bytes',
    );
    await expect(stageUpload(dir, Readable.from([Buffer.alloc(11)]), { size: 10 })).rejects.toThrow(
      'more than the announced 10 bytes',
    );
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('stages an archive of unknown length up to a cap', async () => {
    const staged = await stageUpload(dir, Readable.from([Buffer.alloc(7)]), { maxBytes: 10 });
    expect(staged.bytes).toBe(7);
    staged.remove();
    await expect(stageUpload(dir, Readable.from([Buffer.alloc(11)]), { maxBytes: 10 })).rejects.toThrow(
      'larger than the byte cap of 10 bytes',
    );
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('resetInbox clears leftovers of a killed supervisor and keeps the directory private', () => {
    fs.writeFileSync(path.join(dir, 'left.upload'), 'x');
    resetInbox(dir);
    expect(fs.readdirSync(dir)).toEqual([]);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
  });

  it('resetInbox empties its private directory in place (an early-started QEMU shares that one)', () => {
    const before = fs.statSync(dir).ino;
    fs.mkdirSync(path.join(dir, 'sub'));
    fs.writeFileSync(path.join(dir, 'sub', 'f'), 'x');
    resetInbox(dir);
    expect(fs.readdirSync(dir)).toEqual([]);
    expect(fs.statSync(dir).ino).toBe(before);
  });

  it('resetInbox replaces an inbox others could write to, and a symlink in its place', () => {
    fs.chmodSync(dir, 0o777);
    resetInbox(dir);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'inbox-elsewhere-'));
    fs.writeFileSync(path.join(elsewhere, 'keep'), 'x');
    fs.rmSync(dir, { recursive: true });
    fs.symlinkSync(elsewhere, dir);
    resetInbox(dir);
    expect(fs.lstatSync(dir).isDirectory()).toBe(true);
    expect(fs.readdirSync(elsewhere)).toEqual(['keep']);
    fs.rmSync(elsewhere, { recursive: true });
  });
});
