import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '@smolvm/common';
import { QCOW2_MAX_BACKING_NAME, QCOW2_MAX_SIZE, qcow2Layer, writeQcow2Layer } from '../src/qcow2';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-qcow2-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function qemuImg(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

/** qemu-img's own view of the layer: it must open it, find it consistent and name our backing file. */
function inspect(layer: string): { virtualSize: number; backing: string; backingFormat: string; check: number | null } {
  const info = JSON.parse(qemuImg('info', '--output=json', layer).out) as Record<string, unknown>;
  return {
    virtualSize: info['virtual-size'] as number,
    backing: info['backing-filename'] as string,
    backingFormat: info['backing-filename-format'] as string,
    check: qemuImg('check', '-q', layer).status,
  };
}

/** A sparse raw backing file with a marker at `at`. */
function backingFile(name: string, size: number, at: number, marker: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, '');
  fs.truncateSync(file, size);
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, marker, at);
  fs.closeSync(fd);
  return file;
}

/** Reads `length` bytes at `at` of the guest's view of `layer`, through QEMU's block layer (flattened, sparse). */
function readThrough(layer: string, at: number, length: number): Buffer {
  const out = path.join(dir, 'flat.raw');
  expect(qemuImg('convert', '-f', 'qcow2', '-O', 'raw', layer, out).status).toBe(0);
  const data = Buffer.alloc(length);
  const fd = fs.openSync(out, 'r');
  fs.readSync(fd, data, 0, length, at);
  fs.closeSync(fd);
  fs.rmSync(out);
  return data;
}

describe('writeQcow2Layer', () => {
  it('makes a layer qemu-img accepts as consistent, reading through to the raw backing file', () => {
    const backing = backingFile('base.raw', 1 * GiB, 700 * MiB, 'from the snapshot');
    const layer = path.join(dir, 'fork.qcow2');
    writeQcow2Layer(layer, backing, 1 * GiB);
    expect(inspect(layer)).toEqual({ virtualSize: 1 * GiB, backing, backingFormat: 'raw', check: 0 });
    expect(fs.statSync(layer).mode & 0o777).toBe(0o600);
    // Empty: a few hundred KiB at most, whatever the disk's size.
    expect(fs.statSync(layer).blocks * 512).toBeLessThan(1 * MiB);
    expect(readThrough(layer, 700 * MiB, 17).toString()).toBe('from the snapshot');
  });

  it('is written to the way qemu-img writes its own layers, and stays consistent', () => {
    const backing = backingFile('base.raw', 1 * GiB, 0, 'base');
    const ours = path.join(dir, 'ours.qcow2');
    writeQcow2Layer(ours, backing, 1 * GiB);
    const r = spawnSync(
      'qemu-io',
      ['-f', 'qcow2', '-c', 'write -P 0xab 600M 128k', '-c', 'write -P 0xcd 0 512', ours],
      {
        encoding: 'utf8',
      },
    );
    expect(r.status).toBe(0);
    expect(qemuImg('check', '-q', ours).status).toBe(0);
    const read = spawnSync(
      'qemu-io',
      [
        '-r',
        '-f',
        'qcow2',
        '-c',
        'read -P 0xab 600M 128k',
        '-c',
        'read -P 0xcd 0 512',
        '-c',
        'read -P 0 512 512',
        ours,
      ],
      { encoding: 'utf8' },
    );
    expect(read.stdout + read.stderr).not.toMatch(/fail/i);
    expect(read.stdout.match(/^read \d+\/\d+ bytes/gm)).toEqual([
      'read 131072/131072 bytes',
      'read 512/512 bytes',
      'read 512/512 bytes',
    ]);
    // The backing file is never written.
    const head = Buffer.alloc(4);
    const fd = fs.openSync(backing, 'r');
    fs.readSync(fd, head, 0, 4, 0);
    fs.closeSync(fd);
    expect(head.toString()).toBe('base');
    // Same structures as qemu-img create makes (the same header fields but for the optional feature table).
    const theirs = path.join(dir, 'theirs.qcow2');
    expect(qemuImg('create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', backing, theirs).status).toBe(0);
    const a = fs.readFileSync(path.join(dir, 'theirs.qcow2'));
    const b = qcow2Layer(backing, 1 * GiB).parts[0][1];
    expect(b.subarray(0, 8).equals(a.subarray(0, 8))).toBe(true);
    expect(b.subarray(16, 104).equals(a.subarray(16, 104))).toBe(true);
  });

  it('keeps a backing path with odd characters exactly, and never reads it as a protocol', () => {
    const odd = path.join(dir, 'a dir:with "odd"\n chars, ünïcode & json:{}');
    fs.mkdirSync(odd);
    const backing = backingFile(path.join(path.basename(odd), 'nbd:localhost:1'), 64 * MiB, 512, 'odd');
    const layer = path.join(dir, 'odd.qcow2');
    writeQcow2Layer(layer, backing, 64 * MiB);
    expect(inspect(layer)).toEqual({ virtualSize: 64 * MiB, backing, backingFormat: 'raw', check: 0 });
    expect(readThrough(layer, 512, 3).toString()).toBe('odd');
  });

  it('takes sizes at the bounds: one sector, L1 tables of several clusters, the largest QEMU opens', () => {
    const backing = backingFile('tiny.raw', 512, 0, 'x');
    const tiny = path.join(dir, 'tiny.qcow2');
    writeQcow2Layer(tiny, backing, 512);
    expect(inspect(tiny)).toMatchObject({ virtualSize: 512, check: 0 });
    // 16 TiB (smolvm's largest disk): 32768 L1 entries in 4 clusters, all counted.
    const big = path.join(dir, 'big.qcow2');
    writeQcow2Layer(big, backing, 16 * 1024 * GiB);
    expect(inspect(big)).toMatchObject({ virtualSize: 16 * 1024 * GiB, check: 0 });
    const largest = qcow2Layer(backing, QCOW2_MAX_SIZE);
    expect(largest.length).toBe(3 * 65536 + 32 * MiB);
  });

  it('refuses a relative, NUL-bearing or over-long backing path and a bad size, leaving no file', () => {
    const layer = path.join(dir, 'bad.qcow2');
    const bad: Array<[string, number]> = [
      ['relative/base.raw', GiB],
      ['nbd:localhost:10809', GiB],
      ['json:{"driver":"file","filename":"/etc/shadow"}', GiB],
      ['/a\0b', GiB],
      ['/' + 'x'.repeat(QCOW2_MAX_BACKING_NAME), GiB],
      ['/' + 'é'.repeat(512), GiB],
      ['/base.raw', 0],
      ['/base.raw', -512],
      ['/base.raw', 1000],
      ['/base.raw', 1.5],
      ['/base.raw', Number.NaN],
      ['/base.raw', QCOW2_MAX_SIZE + 512],
    ];
    for (const [backing, size] of bad) {
      expect(() => writeQcow2Layer(layer, backing, size)).toThrow(UsageError);
    }
    // The longest allowed name fits in the header cluster.
    expect(() => qcow2Layer('/' + 'x'.repeat(QCOW2_MAX_BACKING_NAME - 1), GiB)).not.toThrow();
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('never replaces an existing file', () => {
    const backing = backingFile('base.raw', 1 * MiB, 0, 'b');
    const layer = path.join(dir, 'taken');
    fs.writeFileSync(layer, 'mine');
    expect(() => writeQcow2Layer(layer, backing, 1 * MiB)).toThrow(/EEXIST/);
    expect(fs.readFileSync(layer, 'utf8')).toBe('mine');
  });
});
