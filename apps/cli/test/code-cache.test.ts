// The V8 code cache the `smolvm` executable loads its bundle through (src/code-cache.ts): what
// makes it rewrite, what it survives, and that it never breaks or slows down a command.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import {
  cacheFileFor,
  cacheKey,
  commandOf,
  loadBundle,
  readCacheFile,
  writeCacheFile,
  type LoadOptions,
} from '../src/code-cache';

let tmp: string;
let cacheDir: string;
let bundle: string;
let notes: string[];

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-code-cache-'));
  cacheDir = path.join(tmp, 'cache', 'code-cache');
  bundle = path.join(tmp, 'bundle.js');
  notes = [];
  writeBundle(42);
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

let generation = 0;
/** A CommonJS bundle unique to this test run (V8 keeps compiled scripts per process by source). */
function writeBundle(answer: number, padTo?: number): void {
  let source = `// ${process.pid}-${generation++}\n"use strict";\nexports.answer = () => ${answer};\nexports.dir = __dirname;\n`;
  if (padTo !== undefined) source = source.padEnd(padTo, ' ');
  fs.writeFileSync(bundle, source);
}

function load(command = 'machine ls', extra: Partial<LoadOptions> = {}) {
  const loaded = loadBundle({ bundle, cacheDir, command, onNote: (m) => notes.push(m), ...extra });
  return { ...loaded, answer: (loaded.exports as { answer(): number }).answer() };
}

const cacheFile = () => cacheFileFor(cacheDir, bundle);

describe('loadBundle', () => {
  it('compiles without a cache, writes one at exit, uses it next time', () => {
    const first = load();
    expect([first.status, first.answer]).toEqual(['missing', 42]);
    expect((first.exports as { dir: string }).dir).toBe(tmp);
    expect(fs.existsSync(cacheFile())).toBe(false);
    expect(first.flush(0)).toBe(true);
    const written = readCacheFile(cacheFile());
    expect(written.header).toEqual({
      key: cacheKey(bundle, fs.statSync(bundle, { bigint: true })),
      bundle,
      commands: ['machine ls'],
    });
    expect(written.data.length).toBeGreaterThan(0);
    // Owner-only: the cache is code this user runs.
    expect(fs.statSync(cacheFile()).mode & 0o777).toBe(0o600);
    expect(fs.statSync(cacheDir).mode & 0o777).toBe(0o700);

    const second = load();
    expect([second.status, second.answer]).toEqual(['used', 42]);
    expect(notes).toEqual([]);
  });

  it('a cache holds every function the command ran, also when V8 dropped their bytecode meanwhile', () => {
    // Functions that ran once and not since (the bundle's top level first) lose their bytecode
    // when V8 needs memory; a cache made from what is left then lacks them, and every later start
    // compiles them again. --stress-flush-code drops bytecode at every collection.
    const written = (stress: boolean) => {
      const functions = Array.from({ length: 400 }, (_, i) => `function f${i}(x) { return x + ${i}; }`);
      fs.writeFileSync(
        bundle,
        `// ${process.pid}-${generation++}\n${functions.join('\n')}\nexports.answer = () => ${functions.map((_, i) => `f${i}(0)`).join(' + ')};\n`,
      );
      const loaded = load();
      if (stress) {
        v8.setFlagsFromString('--expose-gc');
        const gc = vm.runInNewContext('gc') as () => void;
        v8.setFlagsFromString('--stress-flush-code');
        try {
          for (let i = 0; i < 3; i++) gc();
        } finally {
          v8.setFlagsFromString('--no-stress-flush-code');
        }
      }
      expect(loaded.flush(0)).toBe(true);
      return readCacheFile(cacheFile()).data.length;
    };
    const plain = written(false);
    expect(written(true)).toBeGreaterThan(plain * 0.9);
  });

  it("an embedded bundle (the single file's asset) is keyed by the file that carries it", () => {
    // `bundle` plays the executable: its bytes are not the source, its identity keys the cache.
    const source = () =>
      `"use strict";\n// ${process.pid}-${generation++}-embedded\nexports.answer = () => 7;\nexports.file = __filename;\n`;
    const text = source();
    const first = load('machine ls', { source: () => text });
    expect([first.status, first.answer, (first.exports as { file: string }).file]).toEqual(['missing', 7, bundle]);
    expect(first.flush(0)).toBe(true);
    expect(load('machine ls', { source: () => text })).toMatchObject({ status: 'used', answer: 7 });
    // A rebuilt executable (another identity) never uses the old cache.
    writeBundle(1);
    expect(load('machine ls', { source: () => text })).toMatchObject({ status: 'stale', answer: 7 });
    // Without a cache dir, the source is compiled all the same.
    expect(load('machine ls', { source: () => text, cacheDir: undefined })).toMatchObject({
      status: 'disabled',
      answer: 7,
    });
  });

  it('rewrites a usable cache only for a command that has not contributed yet and succeeded', () => {
    load('machine ls').flush(0);
    // Every write is a new file renamed into place: the inode tells whether one happened.
    const inode = fs.statSync(cacheFile()).ino;
    expect(load('machine ls').flush(0)).toBe(false);
    expect(load('machine run').flush(1)).toBe(false);
    expect(fs.statSync(cacheFile()).ino).toBe(inode);
    expect(load('machine run').flush(0)).toBe(true);
    expect(fs.statSync(cacheFile()).ino).not.toBe(inode);
    expect(readCacheFile(cacheFile()).header.commands).toEqual(['machine ls', 'machine run']);
  });

  it('a changed bundle makes the cache stale, even with the same size and mtime', () => {
    // A whole-second mtime, so that it can be restored exactly (as cp -p or tar would).
    fs.utimesSync(bundle, 1_700_000_000, 1_700_000_000);
    load().flush(0);
    const before = fs.statSync(bundle, { bigint: true });
    writeBundle(7, Number(before.size));
    fs.utimesSync(bundle, 1_700_000_000, 1_700_000_000);
    const after = fs.statSync(bundle, { bigint: true });
    expect([after.ino, after.size, after.mtimeNs]).toEqual([before.ino, before.size, before.mtimeNs]);
    const changed = load();
    expect([changed.status, changed.answer]).toEqual(['stale', 7]);
    expect(changed.flush(1)).toBe(true);
    expect(readCacheFile(cacheFile()).header).toMatchObject({
      key: cacheKey(bundle, fs.statSync(bundle, { bigint: true })),
      commands: [],
    });
    expect(load().status).toBe('used');
    expect(notes).toEqual([]);
  });

  it('another node binary, version or flags make the cache stale', () => {
    load().flush(0);
    const { header, data } = readCacheFile(cacheFile());
    const fields = JSON.parse(header.key) as unknown[];
    for (const [index, value] of [
      [6, '/other/node'],
      [7, 'v20.0.0'],
      [10, ['--max-lazy']],
      [11, '--stack-size=2000'],
    ] as const) {
      const other = [...fields];
      other[index] = value;
      writeCacheFile(cacheFile(), { ...header, key: JSON.stringify(other) }, data);
      expect(load().status).toBe('stale');
    }
  });

  it.each([
    ['a flipped byte in the V8 data', (b: Buffer) => (b[b.length - 100] ^= 0xff)],
    ['a flipped byte in the header', (b: Buffer) => (b[20] ^= 0x01)],
    ['truncation', (b: Buffer) => b.subarray(0, b.length - 1000)],
    ['garbage', (b: Buffer) => Buffer.alloc(b.length, 0x5a)],
    ['an empty file', () => Buffer.alloc(0)],
  ])('a cache damaged by %s is not used (no crash) and is rewritten', (_what, damage) => {
    load().flush(0);
    const bytes = fs.readFileSync(cacheFile());
    const damaged = damage(bytes);
    fs.writeFileSync(cacheFile(), Buffer.isBuffer(damaged) ? damaged : bytes);
    const next = load();
    expect([next.status, next.answer]).toEqual(['unusable', 42]);
    expect(notes).toEqual([
      expect.stringMatching(/is unusable \((checksum mismatch|not a smolvm code cache)\); it will be rewritten$/),
    ]);
    expect(next.flush(0)).toBe(true);
    expect(readCacheFile(cacheFile()).header.commands).toEqual(['machine ls']);
  });

  it('rewrites a cache that V8 rejects although its key matches', () => {
    // Valid file, right key, but V8 data of another script: V8 refuses it (source mismatch).
    const other = path.join(tmp, 'other.js');
    fs.writeFileSync(other, `// other ${process.pid}-${generation++}\nexports.answer = () => 1;\n`);
    const otherLoaded = loadBundle({ bundle: other, cacheDir: path.join(tmp, 'other-cache'), command: 'x' });
    otherLoaded.flush(0);
    const foreign = readCacheFile(cacheFileFor(path.join(tmp, 'other-cache'), other)).data;
    writeCacheFile(
      cacheFile(),
      { key: cacheKey(bundle, fs.statSync(bundle, { bigint: true })), bundle, commands: ['machine ls'] },
      foreign,
    );
    const rejected = load();
    expect([rejected.status, rejected.answer]).toEqual(['rejected', 42]);
    expect(notes).toEqual([expect.stringMatching(/was rejected by V8; it will be rewritten$/)]);
    expect(rejected.flush(0)).toBe(true);
    expect(readCacheFile(cacheFile()).data.equals(foreign)).toBe(false);
  });

  it('a cache directory that cannot be created or written only costs the cache', () => {
    const file = path.join(tmp, 'not-a-dir');
    fs.writeFileSync(file, '');
    const blocked = load('machine ls', { cacheDir: path.join(file, 'code-cache') });
    expect([blocked.status, blocked.answer]).toEqual(['missing', 42]);
    expect(blocked.flush(0)).toBe(false);
    expect(notes).toEqual([expect.stringMatching(/^not written: ENOTDIR/)]);
  });

  it('a read-only cache directory is still read, and a write there fails quietly', () => {
    load('machine ls').flush(0);
    notes = [];
    // chmod does not stop root, which gets /proc/sys instead: nobody can create files there.
    const asRoot = process.getuid?.() === 0;
    if (!asRoot) fs.chmodSync(cacheDir, 0o500);
    try {
      if (!asRoot) expect(load('machine ls').status).toBe('used');
      const next = load('machine run', asRoot ? { cacheDir: '/proc/sys' } : {});
      expect(next.answer).toBe(42);
      expect(next.flush(0)).toBe(false);
      expect(notes).toEqual([expect.stringMatching(/^not written: /)]);
    } finally {
      if (!asRoot) fs.chmodSync(cacheDir, 0o700);
    }
    expect(fs.readdirSync(cacheDir)).toEqual([path.basename(cacheFile())]);
  });

  it('without a cache directory it is a plain require', () => {
    const plain = load('machine ls', { cacheDir: undefined });
    expect([plain.status, plain.answer]).toEqual(['disabled', 42]);
    expect(plain.flush(0)).toBe(false);
    expect(fs.existsSync(cacheDir)).toBe(false);
  });
});

describe('the cache directory stays bounded', () => {
  it("a write removes other bundles' files once their bundle is gone, and crashed writers' temp files", () => {
    const gone = path.join(tmp, 'gone.js');
    fs.writeFileSync(gone, 'exports.answer = () => 0;\n');
    loadBundle({ bundle: gone, cacheDir, command: 'x' }).flush(0);
    fs.rmSync(gone);
    const kept = path.join(tmp, 'kept.js');
    fs.writeFileSync(kept, `// kept ${generation++}\nexports.answer = () => 1;\n`);
    loadBundle({ bundle: kept, cacheDir, command: 'x' }).flush(0);
    const oldTemp = path.join(cacheDir, `.${path.basename(cacheFile())}.tmp-1-old`);
    const newTemp = path.join(cacheDir, `.${path.basename(cacheFile())}.tmp-2-new`);
    fs.writeFileSync(oldTemp, 'x');
    fs.writeFileSync(newTemp, 'x');
    const hourAgo = new Date(Date.now() - 3_600_000);
    fs.utimesSync(oldTemp, hourAgo, hourAgo);
    fs.writeFileSync(path.join(cacheDir, 'cli-0000000000000000.v8cache'), 'garbage');

    load().flush(0);
    expect(fs.readdirSync(cacheDir).sort()).toEqual(
      [path.basename(cacheFile()), path.basename(cacheFileFor(cacheDir, kept)), path.basename(newTemp)].sort(),
    );
  });

  it('keeps at most 20 files', () => {
    for (let i = 0; i < 24; i++) {
      const other = path.join(tmp, `b${i}.js`);
      fs.writeFileSync(other, `// ${generation++}\nexports.answer = () => ${i};\n`);
      loadBundle({ bundle: other, cacheDir, command: 'x' }).flush(0);
    }
    expect(fs.readdirSync(cacheDir)).toHaveLength(20);
  });
});

describe('commandOf', () => {
  it.each([
    [['--version'], '--version'],
    [['--debug', 'machine', 'run', '-I', 'alpine', '--', 'ls', '--help'], 'machine run'],
    [['machine', 'delete', 'box', '-f'], 'machine delete'],
    [['machine', '--help'], 'machine --help'],
    [['image', 'pull', '-h'], 'image pull -h'],
    [[], ''],
  ])('%j -> %j', (args, command) => expect(commandOf(args)).toBe(command));
});
