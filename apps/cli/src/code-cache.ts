// Loads the CLI bundle through a V8 code cache (Node 20 has no module.enableCompileCache).
// Compiling the 2 MB bundle and the functions a command calls is most of the CLI's start-up
// time; with the cache V8 deserializes the bytecode instead. The cache is written when the
// process exits, so it holds the functions the command compiled lazily too, and only when it
// adds something (no usable cache yet, or a command that has not contributed): a write costs
// 5-20 ms (V8 serialization), a start with a usable cache pays none of it.
//
// One file per bundle path, `<dir>/cli-<hash of the path>.v8cache`:
//   "SMVMCC01" | crc32 of what follows it (u32 LE) | header length (u32 LE) | header JSON | V8 data
// The header's key names the bundle (path, inode, size, mtime, ctime) and the node binary, its
// version and flags: a rebuilt bundle or another node never uses a stale cache (V8 itself only
// checks the source length and its version/flags). The CRC matters: V8 does not verify code
// cache payloads in release builds, and a corrupt one crashes the process.
// Nothing here is fatal: any failure loads the bundle without the cache.
// Since V8 runs whatever bytecode a cache holds for a source of the same length, a cache file is
// read, and one written, only where no other user can have written it (assertTrustedPath from
// the cache dir's parent, <cache>, down).
import { isAscii } from 'node:buffer';
import fs from 'node:fs';
import Module from 'node:module';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import zlib from 'node:zlib';
import { UntrustedPathError, assertTrustedPath } from '@smolvm/common';

const MAGIC = Buffer.from('SMVMCC01', 'latin1');
const PREFIX_BYTES = 16;
/** Command names recorded per cache file: the CLI has fewer; a bound keeps the header small. */
const MAX_COMMANDS = 64;
/**
 * Cache files kept for other bundle paths besides the current one: an install has five bundles
 * (CLI, prestart, exec, start, supervisor), each packed executable one, and worktrees or other
 * installs theirs.
 */
const MAX_OTHER_FILES = 19;
/** A temp file this old is a crashed writer's leftover, not a write in progress. */
const STALE_TEMP_MS = 10 * 60_000;

export interface LoadOptions {
  /** Absolute path of the CommonJS bundle (with `source`: the file whose identity keys the cache). */
  bundle: string;
  /**
   * The bundle's text when it is not a file of its own: the single-file smolvm carries it as an
   * asset, and `bundle` is then the executable (it is its __filename too).
   */
  source?: () => string;
  /**
   * Directory of the cache files (`<cache>/code-cache`); undefined loads the bundle with plain
   * require. Its parent is the state root the cache must be private from (assertTrustedPath).
   */
  cacheDir: string | undefined;
  /** What this process runs ("machine run"): the cache is rewritten once for each new command. */
  command: string;
  /** Why the cache could not be used or written (smolvm prints these with --debug only). */
  onNote?: (message: string) => void;
}

/**
 * How the cache served this process (unusable: damaged or unreadable; rejected: by V8;
 * untrusted: another user could have written it or its directory, so it is neither read nor written).
 */
export type CacheStatus = 'disabled' | 'missing' | 'stale' | 'unusable' | 'rejected' | 'untrusted' | 'used';

export interface LoadedBundle {
  exports: unknown;
  status: CacheStatus;
  /** Writes the cache if this process adds to it; call when the process exits. Never throws. */
  flush(exitCode: number): boolean;
}

export interface CacheHeader {
  key: string;
  bundle: string;
  commands: string[];
}

export function loadBundle(options: LoadOptions): LoadedBundle {
  const note = options.onNote ?? (() => undefined);
  let prepared: Prepared | undefined;
  if (options.cacheDir !== undefined) {
    try {
      prepared = prepare(options.bundle, options.cacheDir, note, options.source);
    } catch (err) {
      note(`not used: ${messageOf(err)}`);
    }
  }
  if (!prepared) {
    // Plain require: what Node does without us (and what keeps --enable-source-maps working).
    const exports: unknown = options.source
      ? evaluate(compile(options.source(), options.bundle, undefined), options.bundle)
      : Module.createRequire(__filename)(options.bundle);
    return { exports, status: 'disabled', flush: () => false };
  }
  const { script, cached, file, key } = prepared;
  let status: CacheStatus = prepared.status;
  if (cached && script.cachedDataRejected) {
    status = 'rejected';
    note(`${file} was rejected by V8; it will be rewritten`);
  }
  const known = status === 'used' && cached ? cached.header.commands : [];
  // The cache is written as the process exits, from the bytecode its functions still have then.
  // V8 drops the bytecode of functions that have not run for a while, the bundle's top level
  // first, and a cache without it made every later start compile that 2.3 MB function in full
  // (~35 ms). So a process that will write a cache keeps all its bytecode until then.
  let keeping = status !== 'untrusted' && !(status === 'used' && known.includes(options.command));
  if (keeping) keepBytecode();
  const exports = evaluate(script, options.bundle);
  let flushed = false;
  return {
    exports,
    status,
    flush(exitCode) {
      try {
        return write(exitCode);
      } finally {
        if (keeping) releaseBytecode();
        keeping = false;
      }
    },
  };

  function write(exitCode: number): boolean {
    // A failed command may have stopped anywhere: it does not mark its command as cached.
    const succeeded = exitCode === 0;
    if (flushed || status === 'untrusted' || (status === 'used' && (known.includes(options.command) || !succeeded)))
      return false;
    flushed = true;
    try {
      const dir = path.dirname(file);
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      assertTrustedPath(dir, path.dirname(dir), 'dir');
      const commands =
        succeeded && !known.includes(options.command) ? [...known, options.command].slice(-MAX_COMMANDS) : known;
      const data = withDefaultFlags(() => script.createCachedData());
      writeCacheFile(file, { key, bundle: options.bundle, commands }, data);
      pruneCacheDir(path.dirname(file), file);
      return true;
    } catch (err) {
      note(`not written: ${messageOf(err)}`);
      return false;
    }
  }
}

/** How many bundles loaded in this process will write their cache as it exits (loadBundle). */
let keepers = 0;

function keepBytecode(): void {
  if (keepers++ === 0) v8.setFlagsFromString('--no-flush-bytecode');
}

function releaseBytecode(): void {
  if (--keepers === 0) v8.setFlagsFromString('--flush-bytecode');
}

/**
 * V8 stamps a cache with its flags and rejects one read under other flags: caches are made and
 * read under the defaults, also while a bundle loaded earlier keeps its bytecode.
 */
function withDefaultFlags<T>(fn: () => T): T {
  if (keepers === 0) return fn();
  v8.setFlagsFromString('--flush-bytecode');
  try {
    return fn();
  } finally {
    v8.setFlagsFromString('--no-flush-bytecode');
  }
}

interface Prepared {
  script: vm.Script;
  cached: { header: CacheHeader; data: Buffer } | undefined;
  status: CacheStatus;
  file: string;
  key: string;
}

function prepare(
  bundle: string,
  cacheDir: string,
  note: (message: string) => void,
  embedded?: () => string,
): Prepared | undefined {
  // Source maps are registered by Node's own CommonJS loader only, not for vm.Script.
  if (process.sourceMapsEnabled) return undefined;
  if (typeof zlib.crc32 !== 'function')
    throw new Error(`zlib.crc32 is missing (node ${process.version}; 20.15 or later has it)`);
  let source: string;
  let key: string;
  if (embedded) {
    // The executable carries the bundle: a rebuilt executable is a new file, so its identity keys it.
    key = cacheKey(bundle, fs.statSync(bundle, { bigint: true }));
    source = embedded();
  } else {
    // One descriptor for stat and read: the key describes exactly the bytes compiled.
    const fd = fs.openSync(bundle, 'r');
    try {
      key = cacheKey(bundle, fs.fstatSync(fd, { bigint: true }));
      const bytes = fs.readFileSync(fd);
      // An ASCII bundle decodes ~4x faster as latin1 and becomes a one-byte string.
      source = isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  }
  const file = cacheFileFor(cacheDir, bundle);
  let cached: Prepared['cached'];
  let status: CacheStatus;
  try {
    assertTrustedPath(file, path.dirname(cacheDir));
    const read = readCacheFile(file);
    if (read.header.key === key) {
      cached = read;
      status = 'used';
    } else status = 'stale';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (err instanceof UntrustedPathError) {
      status = 'untrusted';
      note(`not used: ${err.message}`);
    } else {
      status = code === 'ENOENT' || code === 'ENOTDIR' ? 'missing' : 'unusable';
      if (status === 'unusable') note(`${file} is unusable (${messageOf(err)}); it will be rewritten`);
    }
  }
  const script = compile(source, bundle, cached?.data);
  return { script, cached, status, file, key };
}

function compile(source: string, bundle: string, cachedData: Buffer | undefined): vm.Script {
  // The wrapper puts the source inside a function, where a hashbang is a syntax error.
  const text = source.startsWith('#!') ? '//' + source.slice(2) : source;
  return withDefaultFlags(
    () =>
      new vm.Script(Module.wrap(text), {
        filename: bundle,
        ...(cachedData ? { cachedData } : {}),
        // What require would allow: a dynamic import() inside the bundle uses Node's own loader.
        ...(vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER
          ? { importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER }
          : {}),
      }),
  );
}

/** Runs the compiled wrapper as Node's CommonJS loader would run the file. */
function evaluate(script: vm.Script, bundle: string): unknown {
  const wrapper = script.runInThisContext() as (...args: unknown[]) => void;
  const mod = new Module(bundle, module);
  mod.filename = bundle;
  const localRequire = Module.createRequire(bundle);
  wrapper.call(mod.exports, mod.exports, localRequire, mod, bundle, path.dirname(bundle));
  mod.loaded = true;
  return mod.exports;
}

/**
 * What a process runs, for LoadOptions.command: "machine run" for `--debug machine run -I x --
 * cmd`, "machine --help" for `machine --help` (help compiles other functions than the handler).
 */
export function commandOf(args: string[]): string {
  const words: string[] = [];
  for (const arg of args) {
    if (arg === '--') break;
    if (arg === '--help' || arg === '-h' || arg === '--version' || arg === '-V') words.push(arg);
    else if (!arg.startsWith('-') && words.length < 2) words.push(arg);
  }
  return words.join(' ');
}

export function cacheKey(bundle: string, stat: fs.BigIntStats): string {
  return JSON.stringify([
    bundle,
    String(stat.dev),
    String(stat.ino),
    String(stat.size),
    String(stat.mtimeNs),
    // Any write to the file moves ctime, even one that restores size and mtime.
    String(stat.ctimeNs),
    process.execPath,
    process.version,
    process.versions.v8,
    process.arch,
    process.execArgv,
    process.env.NODE_OPTIONS ?? '',
  ]);
}

export function cacheFileFor(cacheDir: string, bundle: string): string {
  return path.join(cacheDir, `cli-${pathHash(bundle)}.v8cache`);
}

/** Reads and verifies a cache file; throws if it is missing, truncated or corrupt. */
export function readCacheFile(file: string): { header: CacheHeader; data: Buffer } {
  const bytes = fs.readFileSync(file);
  if (bytes.length < PREFIX_BYTES || !bytes.subarray(0, MAGIC.length).equals(MAGIC))
    throw new Error('not a smolvm code cache');
  if (zlib.crc32(bytes.subarray(12)) !== bytes.readUInt32LE(8)) throw new Error('checksum mismatch');
  const headerEnd = PREFIX_BYTES + bytes.readUInt32LE(12);
  if (headerEnd > bytes.length) throw new Error('truncated');
  const header = JSON.parse(bytes.toString('utf8', PREFIX_BYTES, headerEnd)) as CacheHeader;
  if (typeof header.key !== 'string' || typeof header.bundle !== 'string' || !Array.isArray(header.commands))
    throw new Error('bad header');
  return { header, data: bytes.subarray(headerEnd) };
}

/** Atomic: a reader sees the previous file or this one, never a partial write (temp + rename). */
export function writeCacheFile(file: string, header: CacheHeader, data: Buffer): void {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(PREFIX_BYTES);
  MAGIC.copy(prefix);
  prefix.writeUInt32LE(json.length, 12);
  let crc = zlib.crc32(prefix.subarray(12));
  crc = zlib.crc32(json, crc);
  crc = zlib.crc32(data, crc);
  prefix.writeUInt32LE(crc, 8);
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
  // No fsync: a cache lost to a power cut is rebuilt, and the CRC rejects a torn one.
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    try {
      fs.writevSync(fd, [prefix, json, data]);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * Bounds the directory: drops files of bundles that no longer exist, unreadable files, crashed
 * writers' temp files, and all but the newest MAX_OTHER_FILES other files. Runs only after a
 * write, which is rare.
 */
export function pruneCacheDir(dir: string, current: string): void {
  const now = Date.now();
  const others: Array<{ file: string; mtimeMs: number }> = [];
  for (const name of fs.readdirSync(dir)) {
    const file = path.join(dir, name);
    if (file === current) continue;
    try {
      const stat = fs.statSync(file);
      if (name.startsWith('.') && name.includes('.tmp-')) {
        if (now - stat.mtimeMs > STALE_TEMP_MS) fs.rmSync(file, { force: true });
      } else if (name.endsWith('.v8cache')) {
        if (!bundleExists(file)) fs.rmSync(file, { force: true });
        else others.push({ file, mtimeMs: stat.mtimeMs });
      }
    } catch {
      // Removed by another process meanwhile, or not ours to remove: leave it.
    }
  }
  others.sort((a, b) => b.mtimeMs - a.mtimeMs);
  for (const { file } of others.slice(MAX_OTHER_FILES)) fs.rmSync(file, { force: true });
}

/** Whether the bundle a cache file was written for still exists; reads the header only. */
function bundleExists(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const prefix = Buffer.alloc(PREFIX_BYTES);
    if (fs.readSync(fd, prefix, 0, PREFIX_BYTES, 0) < PREFIX_BYTES || !prefix.subarray(0, MAGIC.length).equals(MAGIC))
      return false;
    const json = Buffer.alloc(Math.min(prefix.readUInt32LE(12), 1 << 20));
    fs.readSync(fd, json, 0, json.length, PREFIX_BYTES);
    const bundle = (JSON.parse(json.toString('utf8')) as Partial<CacheHeader>).bundle;
    return typeof bundle === 'string' && fs.existsSync(bundle);
  } catch {
    return false;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A short, stable file name for a path: two chained 32-bit FNV-1a lanes. Two paths that collide
 * only share a file, whose key then never matches both: a rewrite, never a wrong cache.
 */
export function pathHash(text: string): string {
  let lo = 0x811c9dc5;
  let hi = 0xcbf29ce4;
  for (let i = 0; i < text.length; i++) {
    lo = Math.imul(lo ^ text.charCodeAt(i), 0x01000193) >>> 0;
    hi = Math.imul(hi ^ lo, 0x01000193) >>> 0;
  }
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

function messageOf(err: unknown): string {
  // Not instanceof: errors from another realm (vm, jest) are Errors too.
  const message = (err as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : String(err);
}
