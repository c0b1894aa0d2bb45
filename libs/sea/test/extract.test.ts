import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { MANIFEST_VERSION, extractAssets, fuseOffset, parseManifest, plainNode, type SeaFile } from '@smolvm/sea';

const sha256 = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');

function fixture(files: Array<{ name: string; data: Buffer; gzip?: boolean; mode?: number }>): {
  manifestText: string;
  readAsset: (key: string) => Buffer;
  reads: string[];
} {
  const assets = new Map<string, Buffer>();
  const entries: SeaFile[] = files.map((f, i) => {
    assets.set(`a${i}`, f.gzip ? zlib.gzipSync(f.data) : f.data);
    return {
      name: f.name,
      asset: `a${i}`,
      sha256: sha256(f.data),
      size: f.data.length,
      mode: f.mode ?? 0o644,
      gzip: f.gzip ?? false,
    };
  });
  const reads: string[] = [];
  return {
    manifestText: JSON.stringify({
      version: MANIFEST_VERSION,
      app: 'test',
      node: process.version,
      main: sha256(Buffer.from('main')),
      files: entries,
    }),
    readAsset: (key) => {
      reads.push(key);
      const data = assets.get(key);
      if (!data) throw new Error(`no asset ${key}`);
      return data;
    },
    reads,
  };
}

describe('extractAssets', () => {
  let cacheDir: string;
  beforeEach(() => {
    cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-sea-test-'));
  });
  afterEach(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

  it('extracts every file owner-only, gunzipped, once per build', () => {
    const kernel = crypto.randomBytes(100_000);
    const fx = fixture([
      { name: 'vmlinux', data: kernel, gzip: true },
      { name: 'busybox', data: Buffer.from('#!/bin/sh\n'), mode: 0o755 },
      { name: 'node_modules/koffi/index.js', data: Buffer.from('module.exports = 1;\n') },
    ]);
    const first = extractAssets({ cacheDir, ...fx });
    expect(fs.readFileSync(first.path('vmlinux')).equals(kernel)).toBe(true);
    expect(fs.statSync(first.path('busybox')).mode & 0o777).toBe(0o700);
    expect(fs.statSync(first.path('vmlinux')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(first.dir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(cacheDir, 'sea')).mode & 0o777).toBe(0o700);
    expect(first.has('node_modules/koffi/index.js')).toBe(true);
    expect(() => first.path('nothing')).toThrow(/carries no nothing/);
    const reads = fx.reads.length;
    const again = extractAssets({ cacheDir, ...fx });
    expect(again.dir).toBe(first.dir);
    expect(fx.reads.length).toBe(reads); // nothing read or written the second time
    // No staging directory is left behind.
    expect(fs.readdirSync(path.join(cacheDir, 'sea'))).toEqual([path.basename(first.dir)]);
  });

  it('another build gets its own directory', () => {
    const a = extractAssets({ cacheDir, ...fixture([{ name: 'vmlinux', data: Buffer.from('one') }]) });
    const b = extractAssets({ cacheDir, ...fixture([{ name: 'vmlinux', data: Buffer.from('two') }]) });
    expect(a.dir).not.toBe(b.dir);
    expect(fs.readFileSync(b.path('vmlinux'), 'utf8')).toBe('two');
  });

  it('refuses a damaged asset and leaves nothing behind', () => {
    const fx = fixture([{ name: 'vmlinux', data: Buffer.from('kernel') }]);
    const damaged = { ...fx, readAsset: () => Buffer.from('kernEl') };
    expect(() => extractAssets({ cacheDir, ...damaged })).toThrow(/does not match its manifest entry/);
    expect(fs.readdirSync(path.join(cacheDir, 'sea'))).toEqual([]);
  });

  it('bounds what a gzip asset may inflate to', () => {
    const big = Buffer.alloc(1 << 20);
    const fx = fixture([{ name: 'vmlinux', data: Buffer.from('small'), gzip: true }]);
    const bomb = { ...fx, readAsset: () => zlib.gzipSync(big) };
    expect(() => extractAssets({ cacheDir, ...bomb })).toThrow(/cannot extract/);
  });

  it('refuses an extraction another user could have changed', () => {
    const fx = fixture([{ name: 'vmlinux', data: Buffer.from('kernel') }]);
    const { dir } = extractAssets({ cacheDir, ...fx });
    fs.chmodSync(dir, 0o777);
    expect(() => extractAssets({ cacheDir, ...fx })).toThrow(/refusing .*writable by its group and other users/);
  });

  it('a racing extraction that finished first wins; the loser uses it and leaves nothing', () => {
    const fx = fixture([{ name: 'vmlinux', data: crypto.randomBytes(1 << 16) }]);
    let inner: string | undefined;
    // While this extraction stages its files, another one of the same build completes.
    const racing = {
      ...fx,
      readAsset: (key: string) => {
        inner ??= extractAssets({ cacheDir, ...fx }).dir;
        return fx.readAsset(key);
      },
    };
    const outer = extractAssets({ cacheDir, ...racing });
    expect(outer.dir).toBe(inner);
    expect(fs.readdirSync(path.join(cacheDir, 'sea'))).toEqual([path.basename(outer.dir)]);
    expect(fs.readFileSync(outer.path('vmlinux')).length).toBe(1 << 16);
  });
});

describe('parseManifest', () => {
  const entry = { name: 'vmlinux', asset: 'a0', sha256: 'a'.repeat(64), size: 1, mode: 0o644, gzip: false };
  const manifest = (files: unknown[]): string =>
    JSON.stringify({ version: MANIFEST_VERSION, app: 'x', node: 'v20', main: 'm', files });
  it.each(['../etc/passwd', '/etc/passwd', 'a/../../b', 'a//b', '.', 'a/./b', ''])('refuses the path %j', (name) => {
    expect(() => parseManifest(manifest([{ ...entry, name }]))).toThrow(/malformed SEA manifest entry/);
  });
  it('refuses duplicates, setuid modes, huge sizes and other versions', () => {
    expect(() => parseManifest(manifest([entry, entry]))).toThrow(/twice/);
    expect(() => parseManifest(manifest([{ ...entry, mode: 0o4755 }]))).toThrow(/malformed/);
    expect(() => parseManifest(manifest([{ ...entry, size: 2 ** 40 }]))).toThrow(/malformed/);
    expect(() => parseManifest(JSON.stringify({ version: 2, files: [] }))).toThrow(/version 2/);
  });
});

describe('plainNode', () => {
  const fuse = ['NODE_SEA_FUSE', 'fce680ab2cc467b6e072b8b5df1996b2'].join('_');
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-sea-node-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('copies the executable with its fuse reset, once', () => {
    const exe = path.join(dir, 'exe');
    fs.writeFileSync(exe, Buffer.concat([Buffer.from('ELF...'), Buffer.from(`${fuse}:1`), Buffer.from('...blob')]));
    const node = plainNode(exe, dir);
    const bytes = fs.readFileSync(node);
    expect(bytes[fuseOffset(bytes)]).toBe(0x30);
    expect(bytes.length).toBe(fs.statSync(exe).size);
    expect(fs.statSync(node).mode & 0o777).toBe(0o700);
    fs.writeFileSync(exe, 'changed');
    expect(plainNode(exe, dir)).toBe(node); // made once per extraction directory
  });

  it('refuses a file without the fuse', () => {
    const exe = path.join(dir, 'exe');
    fs.writeFileSync(exe, 'not a node');
    expect(() => plainNode(exe, dir)).toThrow(/no single-executable fuse/);
    expect(fs.readdirSync(dir)).toEqual(['exe']);
  });

  it('the real node binary has the fuse, unset', () => {
    const bytes = fs.readFileSync(fs.realpathSync(process.execPath));
    const at = fuseOffset(bytes);
    expect(at).toBeGreaterThan(0);
    expect(bytes[at]).toBe(0x30);
  });
});
