import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '@smolvm/common';
import { allocatedBytes, compactDisk, createDisk, growDisk } from '../src';

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
