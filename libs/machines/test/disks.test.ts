import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '@smolvm/common';
import { allocatedBytes, compactDisk, createDisk, growDisk } from '../src';
import { createDisks } from '../src/disks';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-disks-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const GiB = 1024 ** 3;

function debugfs(file: string, request: string, write = false): string {
  const r = spawnSync('debugfs', [...(write ? ['-w'] : []), '-R', request, file], { encoding: 'utf8' });
  return r.stdout + r.stderr;
}

function fsck(file: string): number | null {
  return spawnSync('e2fsck', ['-fn', file], { encoding: 'utf8' }).status;
}

describe('createDisk', () => {
  it('makes a clean, sparse ext4 of the full size without writing it, owned by root', () => {
    const disk = path.join(dir, 'storage.ext4');
    createDisk(disk, 20, 'smolvm-storage', { shared: true });
    expect(fs.statSync(disk).size).toBe(20 * GiB);
    expect(allocatedBytes(disk)).toBeLessThan(32 * 1024 * 1024);
    expect(fsck(disk)).toBe(0);
    const root = debugfs(disk, 'stat /');
    expect(root).toMatch(/Mode:\s+01777/);
    expect(root).toMatch(/User:\s+0\s+Group:\s+0/);
    expect(fs.readdirSync(dir)).toEqual(['storage.ext4']);
  });

  it('leaves nothing behind when mkfs cannot run', () => {
    const disk = path.join(dir, 'no-such-dir', 'x.ext4');
    expect(() => createDisk(disk, 1, 'x')).toThrow();
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

describe('createDisks', () => {
  const disksIn = (machine: string) => [
    { file: path.join(machine, 'overlay.ext4'), sizeGiB: 2, label: 'smolvm-overlay' },
    { file: path.join(machine, 'storage.ext4'), sizeGiB: 20, label: 'smolvm-storage', shared: true },
  ];

  it('copies disks as createDisk makes them from templates made once, leaving only the disks', () => {
    const cache = path.join(dir, 'cache');
    const a = path.join(dir, 'a');
    fs.mkdirSync(a);
    createDisks(disksIn(a), cache);
    const templates = path.join(cache, 'disk-templates');
    expect(fs.readdirSync(templates).sort()).toEqual(['smolvm-overlay-2g', 'smolvm-storage-20g-shared']);
    const template = path.join(templates, 'smolvm-storage-20g-shared', 'storage.ext4');
    const made = fs.statSync(template);
    expect(made.mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(template)).mode & 0o777).toBe(0o700);

    const b = path.join(dir, 'b');
    fs.mkdirSync(b);
    createDisks(disksIn(b), cache);
    // The template was used as it was, not made again.
    expect([fs.statSync(template).ino, fs.statSync(template).mtimeMs]).toEqual([made.ino, made.mtimeMs]);
    for (const machine of [a, b]) {
      expect(fs.readdirSync(machine).sort()).toEqual(['overlay.ext4', 'storage.ext4']);
      const overlay = path.join(machine, 'overlay.ext4');
      const storage = path.join(machine, 'storage.ext4');
      expect([fs.statSync(overlay).size, fs.statSync(storage).size]).toEqual([2 * GiB, 20 * GiB]);
      expect(fs.statSync(storage).mode & 0o777).toBe(0o600);
      expect(allocatedBytes(storage)).toBeLessThan(32 * 1024 * 1024);
      expect([fsck(overlay), fsck(storage)]).toEqual([0, 0]);
      expect(debugfs(overlay, 'stats')).toMatch(/Filesystem volume name:\s+smolvm-overlay/);
      expect(debugfs(storage, 'stat /')).toMatch(/Mode:\s+01777/);
      expect(debugfs(overlay, 'stat /')).toMatch(/Mode:\s+0755/);
    }
    // Each machine's disk is its own file: a write to one is not in the other or the template.
    const payload = path.join(dir, 'payload');
    fs.writeFileSync(payload, 'mine\n');
    debugfs(path.join(a, 'storage.ext4'), `write ${payload} mine.txt`, true);
    expect(debugfs(path.join(b, 'storage.ext4'), 'ls /')).not.toContain('mine.txt');
    expect(debugfs(template, 'ls /')).not.toContain('mine.txt');
  });

  it('does not use a template another user could have written: it is made again', () => {
    const cache = path.join(dir, 'cache');
    const a = path.join(dir, 'a');
    fs.mkdirSync(a);
    const overlayOnly = disksIn(a).slice(0, 1);
    createDisks(overlayOnly, cache);
    const kind = path.join(cache, 'disk-templates', 'smolvm-overlay-2g');
    const template = path.join(kind, 'overlay.ext4');
    // Planted: another file in its place, in a directory others may write.
    fs.writeFileSync(template, 'planted');
    fs.truncateSync(template, 2 * GiB);
    fs.chmodSync(kind, 0o777);
    fs.rmSync(path.join(a, 'overlay.ext4'));
    createDisks(overlayOnly, cache);
    // Made again, in a directory made private again (it is ours): the machine got a real disk.
    expect(fs.statSync(kind).mode & 0o777).toBe(0o700);
    expect([fsck(template), fsck(path.join(a, 'overlay.ext4'))]).toEqual([0, 0]);
  });
});

describe('growDisk and compactDisk', () => {
  it('grows the file and the filesystem, keeps the data, refuses to shrink', () => {
    const disk = path.join(dir, 'd.ext4');
    createDisk(disk, 1, 'd');
    const payload = path.join(dir, 'payload');
    fs.writeFileSync(payload, 'kept\n');
    debugfs(disk, `write ${payload} kept.txt`, true);
    growDisk(disk, 3);
    expect(fs.statSync(disk).size).toBe(3 * GiB);
    expect(fsck(disk)).toBe(0);
    expect(debugfs(disk, 'stats')).toMatch(/Block count:\s+786432/);
    expect(debugfs(disk, 'cat /kept.txt')).toContain('kept');
    expect(() => growDisk(disk, 2)).toThrow(UsageError);
  });

  it('returns the blocks of deleted files to the host', () => {
    const disk = path.join(dir, 'd.ext4');
    createDisk(disk, 1, 'd');
    const big = path.join(dir, 'big');
    fs.writeFileSync(big, Buffer.alloc(40 * 1024 * 1024, 7));
    debugfs(disk, `write ${big} big`, true);
    const full = allocatedBytes(disk);
    debugfs(disk, 'rm big', true);
    const reclaimed = compactDisk(disk);
    expect(reclaimed).toBeGreaterThan(35 * 1024 * 1024);
    expect(allocatedBytes(disk)).toBeLessThan(full - 35 * 1024 * 1024);
    expect(fsck(disk)).toBe(0);
  });
});
