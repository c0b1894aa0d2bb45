// A pack's runtime (format version 4): the guest's agent runs on the Node of the executable the
// pack was packed with, read from that executable's first `size` bytes (a read-only disk), so the
// pack does not carry a second Node. Wherever the pack is run, those bytes are looked for beside it,
// in the caller's candidates and in the section cache, and checked against the manifest's sha256
// (a success remembered per file identity: a ~90 MB hash is paid once per file).
import fs from 'node:fs';
import path from 'node:path';
import {
  NotFoundError,
  SmolvmError,
  assertTrustedPath,
  commitTempFile,
  ensurePrivateDir,
  hashingTap,
  tempPathFor,
} from '@smolvm/common';
import { SECTION_ALIGN } from './format';
import { MAX_RUNTIME_BYTES, type PackRuntime } from './manifest';
import type { PackFile } from './reader';
import { cachedSectionName, inPlaceWeakness, sectionCacheDir } from './sections';
import { identityOf, isRemembered, remember, sameIdentity, verifiedRecordPath } from './verified';

/** Where a pack's runtime is read from: a whole file, or the first `range.size` bytes of one. */
export interface RuntimeDisk {
  path: string;
  range?: { offset: number; size: number };
  sha256: string;
}

/** sha256 (hex) of a file's first `size` bytes, optionally copied into `sink`; undefined if it has fewer. */
async function hashPrefix(file: string, size: number, sink?: fs.promises.FileHandle): Promise<string | undefined> {
  const hashed = hashingTap();
  const chunks = fs.createReadStream(file, { start: 0, end: size - 1, highWaterMark: 1 << 20 });
  for await (const b of hashed.tap(chunks as AsyncIterable<Buffer>))
    if (sink) await sink.write(b, 0, b.length, hashed.size() - b.length);
  return hashed.size() === size ? hashed.digest() : undefined;
}

/**
 * The runtime `pack create` records for an executable: its size rounded down to SECTION_ALIGN
 * (what a raw disk of it can hold) and the sha256 of those bytes, streamed.
 */
export async function runtimeOf(executable: string): Promise<{ size: number; sha256: string }> {
  const file = path.resolve(executable);
  let bytes: number;
  try {
    bytes = fs.statSync(file).size;
  } catch (err) {
    throw new NotFoundError(`cannot read the executable ${file} (${(err as NodeJS.ErrnoException).code ?? err})`, {
      remedy: 'check the path of the stub executable',
    });
  }
  const size = Math.floor(bytes / SECTION_ALIGN) * SECTION_ALIGN;
  if (size === 0 || size > MAX_RUNTIME_BYTES) {
    throw new SmolvmError(
      `${file} is ${bytes} bytes: a pack's runtime is from ${SECTION_ALIGN} bytes to ${MAX_RUNTIME_BYTES} bytes of it`,
      { remedy: 'pack with the smolvm-stub executable built by tools/setup' },
    );
  }
  const sha256 = await hashPrefix(file, size);
  if (sha256 === undefined)
    throw new SmolvmError(`${file} became shorter while it was read`, { remedy: 'pack again once it is installed' });
  return { size, sha256 };
}

/** The executable a pack came with: itself when single-file, else `X` beside `X.smolmachine`. */
export function packExecutable(pack: PackFile): string | undefined {
  if (pack.payloadStart > 0) return pack.path;
  const suffix = '.smolmachine';
  return pack.path.endsWith(suffix) && pack.path.length > suffix.length
    ? pack.path.slice(0, -suffix.length)
    : undefined;
}

export function runtimeCachePath(runtime: Pick<PackRuntime, 'sha256'>, cacheDir: string): string {
  return path.join(sectionCacheDir(cacheDir), cachedSectionName(runtime));
}

/** The runtime's copy in the section cache, when there (complete, and only this user can have written it). */
export function cachedRuntime(runtime: Pick<PackRuntime, 'size' | 'sha256'>, cacheDir: string): string | undefined {
  const file = runtimeCachePath(runtime, cacheDir);
  try {
    assertTrustedPath(file, cacheDir);
    // Named by its sha256 and hashed on its way in (temp + rename), like the sections beside it.
    if (fs.statSync(file).size === runtime.size) return file;
  } catch {
    // Missing or untrusted: not used.
  }
  return undefined;
}

/**
 * Copies the first `runtime.size` bytes of `source` into the section cache, hashed on the way in
 * (temp + rename, owner-only: processes that race write the same file). Undefined, leaving nothing,
 * when they are not the runtime's bytes.
 */
export async function cacheRuntimeFrom(
  source: string,
  runtime: Pick<PackRuntime, 'size' | 'sha256'>,
  cacheDir: string,
): Promise<string | undefined> {
  ensurePrivateDir(sectionCacheDir(cacheDir));
  const target = runtimeCachePath(runtime, cacheDir);
  const tmp = tempPathFor(target);
  const fh = await fs.promises.open(tmp, 'wx', 0o600);
  try {
    if ((await hashPrefix(source, runtime.size, fh)) !== runtime.sha256) {
      await fh.close();
      fs.rmSync(tmp, { force: true });
      return undefined;
    }
    await fh.sync();
    await fh.close();
    commitTempFile(tmp, target);
    return target;
  } catch (err) {
    await fh.close().catch(() => undefined);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** Whether `file` starts with the runtime's bytes: hashed, unless this identity was found right before. */
async function startsWithRuntime(file: string, runtime: PackRuntime, cacheDir: string): Promise<boolean> {
  const before = identityOf(fs.statSync(file, { bigint: true }));
  const record = verifiedRecordPath(cacheDir, ['runtime', before, runtime.size, runtime.sha256]);
  if (isRemembered(record, cacheDir)) return true;
  if ((await hashPrefix(file, runtime.size)) !== runtime.sha256) return false;
  // Remembered only if the file did not change while it was read.
  if (sameIdentity(identityOf(fs.statSync(file, { bigint: true })), before))
    remember(record, { path: file, identity: before, runtime: { size: runtime.size, sha256: runtime.sha256 } });
  return true;
}

/**
 * Where the pack's runtime is read from, or undefined when its manifest has none. Looked for, in
 * order: the executable the pack came with (packExecutable), `candidates` (the caller's: e.g. its
 * own stub executable), then the section cache. A file counts only if its first `size` bytes
 * hash to the manifest's sha256; it is used in place when no other user can change it
 * (inPlaceWeakness), else copied into the cache and the copy used. Throws NotFoundError, naming
 * every place looked at, when none has it.
 */
export async function runtimeDisk(
  pack: PackFile,
  cacheDir: string,
  candidates: string[] = [],
): Promise<RuntimeDisk | undefined> {
  return findRuntime(pack, cacheDir, candidates, false);
}

/** The runtime copied into the section cache (a machine made from the pack must not need its executable). */
export async function importRuntime(
  pack: PackFile,
  cacheDir: string,
  candidates: string[] = [],
): Promise<RuntimeDisk | undefined> {
  return findRuntime(pack, cacheDir, candidates, true);
}

async function findRuntime(
  pack: PackFile,
  cacheDir: string,
  candidates: string[],
  intoCache: boolean,
): Promise<RuntimeDisk | undefined> {
  const runtime = pack.manifest.runtime;
  if (!runtime) return undefined;
  const { size, sha256 } = runtime;
  const cached = cachedRuntime(runtime, cacheDir);
  if (cached && intoCache) return { path: cached, sha256 };
  const own = packExecutable(pack);
  const places = [...new Set([...(own ? [own] : []), ...candidates].map((c) => path.resolve(c)))];
  const looked: string[] = [];
  for (const place of places) {
    let real: string;
    let weakness: string | undefined;
    try {
      real = fs.realpathSync(place);
      const st = fs.statSync(real);
      if (!st.isFile()) {
        looked.push(`${place} (not a regular file)`);
        continue;
      }
      if (st.size < size) {
        looked.push(`${place} (shorter than ${size} bytes)`);
        continue;
      }
      fs.accessSync(real, fs.constants.R_OK);
      weakness = intoCache ? 'copied' : inPlaceWeakness(real);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      looked.push(`${place} (${code === 'ENOENT' ? 'missing' : `cannot be read: ${code ?? (err as Error).message}`})`);
      continue;
    }
    // In place only if nobody else can change it after the check; QEMU opens the real path.
    if (weakness === undefined) {
      if (await startsWithRuntime(real, runtime, cacheDir)) return { path: real, range: { offset: 0, size }, sha256 };
    } else {
      if (cached) return { path: cached, sha256 };
      const copied = await cacheRuntimeFrom(real, runtime, cacheDir);
      if (copied) return { path: copied, sha256 };
    }
    looked.push(`${place} (other bytes)`);
  }
  if (cached) return { path: cached, sha256 };
  looked.push(`${runtimeCachePath(runtime, cacheDir)} (missing)`);
  throw new NotFoundError(
    `${pack.path}: its guest runs on the Node of the executable it was packed with (runtime sha256 ` +
      `${sha256.slice(0, 12)}, ${size} bytes), and none of the places looked at has it: ${looked.join('; ')}`,
    {
      remedy:
        pack.payloadStart > 0
          ? 'get the executable again from where it came from (its first bytes changed), or pull the pack again (smolvm pack pull REF)'
          : `keep the executable it was packed with beside the .smolmachine${own ? ` (as ${own})` : ''}, or pull the pack again (smolvm pack pull REF)`,
    },
  );
}
