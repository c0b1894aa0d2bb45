// Issue 14, item 7: the V8 code cache (<cache>/code-cache) is code the `smolvm` executable runs.
// V8 checks only a cache's source length and its own version and flags, so a cache made from
// another source of the same length runs that source's code. Each test plants such a cache the
// way another local user (or a lax umask) could and loads the bundle as the executable does
// (loadBundle): a cache another user could have written must be ignored.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ATTACKER, asAttacker, rootOnlyIt } from './localusers-helpers';
import { cacheFileFor, cacheKey, loadBundle, readCacheFile, writeCacheFile } from '../../src/code-cache';

const rootOnly = rootOnlyIt('localusers-code-cache');

let tmp: string;
let home: string;
let cacheDir: string;
let bundle: string;
let notes: string[];
let generation = 0;

/** Sources unique to this test (V8 keeps compiled scripts per process by source), all of one length. */
function source(answer: string): string {
  return `// ${process.pid}-${generation}\n"use strict";\nexports.answer = () => "${answer}";\n`;
}

beforeEach(() => {
  generation++;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-localusers-cc-'));
  home = path.join(tmp, 'home');
  cacheDir = path.join(home, 'cache', 'code-cache');
  bundle = path.join(tmp, 'smolvm-main.js');
  fs.mkdirSync(home, { mode: 0o700 });
  fs.writeFileSync(bundle, source('genuine'));
  notes = [];
});

afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A valid cache for `bundle` whose code is that of a same-length source answering "HOSTILE". */
function hostileCache(): Buffer {
  const evil = path.join(tmp, 'evil', 'smolvm-main.js');
  fs.mkdirSync(path.dirname(evil), { recursive: true });
  fs.writeFileSync(evil, source('HOSTILE'));
  const evilCache = path.join(tmp, 'evil', 'cache');
  const loaded = loadBundle({ bundle: evil, cacheDir: evilCache, command: 'machine ls' });
  (loaded.exports as { answer(): string }).answer();
  loaded.flush(0);
  const { data } = readCacheFile(cacheFileFor(evilCache, evil));
  const file = path.join(tmp, 'hostile.v8cache');
  writeCacheFile(
    file,
    { key: cacheKey(bundle, fs.statSync(bundle, { bigint: true })), bundle, commands: ['machine ls'] },
    data,
  );
  return fs.readFileSync(file);
}

function run(options: { flush?: boolean } = {}): { answer: string; status: string } {
  const loaded = loadBundle({ bundle, cacheDir, command: 'machine ls', onNote: (m) => notes.push(m) });
  const answer = (loaded.exports as { answer(): string }).answer();
  if (options.flush) loaded.flush(0);
  return { answer, status: loaded.status };
}

const plantedFile = () => cacheFileFor(cacheDir, bundle);

describe('a code cache another user could have written is ignored', () => {
  it('control: the same cache written by this user into its own directory is used (so the test can tell)', () => {
    const bytes = hostileCache();
    fs.mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(plantedFile(), bytes, { mode: 0o600 });
    expect(run()).toEqual({ answer: 'HOSTILE', status: 'used' });
  });

  rootOnly('planted by another user in a shared SMOLVM_HOME', () => {
    const bytes = hostileCache();
    const source = path.join(tmp, 'for-attacker.v8cache');
    fs.writeFileSync(source, bytes, { mode: 0o644 });
    fs.chmodSync(tmp, 0o755);
    fs.chmodSync(home, 0o777);
    asAttacker(`mkdir -p '${cacheDir}' && cp '${source}' '${plantedFile()}'`);
    expect(fs.statSync(plantedFile()).uid).toBe(ATTACKER);
    expect(run()).toEqual({ answer: 'genuine', status: 'untrusted' });
    // Refused at the first directory the attacker could change things in: the shared home.
    expect(notes).toEqual([`not used: refusing ${home}: it is writable by others without the sticky bit (mode 777)`]);
  });

  rootOnly('a file of another user in an own directory', () => {
    fs.mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(plantedFile(), hostileCache(), { mode: 0o600 });
    fs.chownSync(plantedFile(), ATTACKER, ATTACKER);
    expect(run().answer).toBe('genuine');
  });

  rootOnly('a symlink another user planted, to a file of this user', () => {
    const lure = path.join(home, 'download.bin');
    fs.writeFileSync(lure, hostileCache(), { mode: 0o600 });
    fs.chmodSync(tmp, 0o755);
    fs.chmodSync(home, 0o777);
    asAttacker(`mkdir -p '${cacheDir}' && ln -s '${lure}' '${plantedFile()}'`);
    expect(run().answer).toBe('genuine');
  });

  it('an own file in a cache directory others can write (made under umask 000)', () => {
    fs.mkdirSync(cacheDir, { recursive: true });
    fs.chmodSync(cacheDir, 0o777);
    fs.writeFileSync(plantedFile(), hostileCache(), { mode: 0o600 });
    expect(run().answer).toBe('genuine');
  });

  it('an own file others can write', () => {
    fs.mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(plantedFile(), hostileCache());
    fs.chmodSync(plantedFile(), 0o666);
    expect(run().answer).toBe('genuine');
  });

  it('nothing is written into a directory others can write', () => {
    fs.mkdirSync(cacheDir, { recursive: true });
    fs.chmodSync(cacheDir, 0o777);
    expect(run({ flush: true }).answer).toBe('genuine');
    expect(fs.readdirSync(cacheDir)).toEqual([]);
  });
});
