// Using a verified pack's sections: QEMU reads a disk section in place (raw driver offset/size)
// when nobody but this user (or root) can change the file; anything else, and the kernel (QEMU
// takes it as a file), is copied into a cache keyed by sha256, hashed on the way in.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { assertTrustedPath, commitTempFile, ensurePrivateDir, hashingTap, tempPathFor } from '@smolvm/common';
import { PackFormatError } from './format';
import { isZero } from './writer';
import type { PackSection, SectionName } from './manifest';
import type { PackFile } from './reader';

/** A section as a disk: a whole file, or a byte range of one. */
export interface SectionFile {
  path: string;
  offset?: number;
  size?: number;
}

export function sectionCacheDir(cacheDir: string): string {
  return path.join(cacheDir, 'pack', 'sections');
}

/**
 * The section's bytes as their own file under `<cacheDir>/pack/sections/<sha256>`. Safe when
 * processes race: each copies to its own temp file and renames (same content, same name).
 */
export async function extractSection(pack: PackFile, name: SectionName, cacheDir: string): Promise<string> {
  return (await copySection(pack, name, cacheDir)).path;
}

/** extractSection, saying whether it copied (and so hashed) the section now or found it cached. */
export async function copySection(
  pack: PackFile,
  name: SectionName,
  cacheDir: string,
): Promise<{ path: string; copied: boolean }> {
  const s = pack.section(name);
  if (!s) throw new PackFormatError(pack.path, `it has no ${name} section`);
  const dir = sectionCacheDir(cacheDir);
  ensurePrivateDir(dir);
  const target = path.join(dir, cachedSectionName(s));
  try {
    assertTrustedPath(target, cacheDir);
    // Not touched when used: boot snapshot keys remember the kernel's digest per file identity (times included).
    if (fs.statSync(target).size === (s.uncompressed_size ?? s.size)) return { path: target, copied: false };
  } catch {
    // Missing, or not trustworthy: written again below (renamed over it).
  }
  const tmp = tempPathFor(target);
  const fh = await fs.promises.open(tmp, 'wx', 0o600);
  try {
    if (s.compression) await inflateSection(pack, s, fh);
    else await writeSection(pack, name, fh);
    await fh.sync();
    await fh.close();
    commitTempFile(tmp, target);
    return { path: target, copied: true };
  } catch (err) {
    await fh.close().catch(() => undefined);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * A section's name in the cache: the sha256 of its content (uncompressed), so the same kernel
 * stored raw in one pack and compressed in another is one file.
 */
export function cachedSectionName(s: Pick<PackSection, 'sha256' | 'uncompressed_sha256'>): string {
  return s.uncompressed_sha256 ?? s.sha256;
}

/**
 * Decompresses a compressed section into `fh`: its stored bytes are checked against `size` and
 * `sha256`, what they inflate to against `uncompressed_size` and `uncompressed_sha256`, and inflating
 * stops at `uncompressed_size` (a small section cannot fill the disk).
 */
async function inflateSection(pack: PackFile, s: PackSection, fh: fs.promises.FileHandle): Promise<void> {
  const damaged = (why: string) =>
    new PackFormatError(pack.path, `its ${s.name} section ${why} (damaged or tampered with)`);
  if (s.compression !== 'gzip' || s.uncompressed_size === undefined || s.uncompressed_sha256 === undefined)
    throw damaged(`is stored in a way this smolvm does not know`);
  const limit = s.uncompressed_size;
  const stored = hashingTap();
  const inflated = crypto.createHash('sha256');
  let pos = 0;
  const gunzip = zlib.createGunzip();
  try {
    await Promise.all([
      pipeline(pack.readSection(s.name), stored.tap, gunzip),
      (async () => {
        for await (const chunk of gunzip) {
          const b = chunk as Buffer;
          if (pos + b.length > limit) throw damaged(`inflates to more than its ${limit} bytes`);
          inflated.update(b);
          await fh.write(b, 0, b.length, pos);
          pos += b.length;
        }
      })(),
    ]);
  } catch (err) {
    gunzip.destroy();
    if (err instanceof PackFormatError) throw err;
    // zlib's own errors (a bad header, a cut stream): the stored bytes are not what was packed.
    throw damaged(`does not decompress (${(err as Error).message})`);
  }
  if (stored.size() !== s.size || stored.digest() !== s.sha256) throw damaged('does not match its sha256');
  if (pos !== limit || inflated.digest('hex') !== s.uncompressed_sha256)
    throw damaged('does not match its uncompressed_sha256');
}

/**
 * Writes a section into `fh` from offset 0, hashed on the way, and throws unless its size and sha256
 * are the manifest's. With `sparse`, all-zero chunks are left as holes (disks, memory).
 */
export async function writeSection(
  pack: PackFile,
  name: SectionName,
  fh: fs.promises.FileHandle,
  options: { sparse?: boolean } = {},
): Promise<void> {
  const s = pack.section(name);
  if (!s) throw new PackFormatError(pack.path, `it has no ${name} section`);
  if (s.compression) throw new Error(`writeSection: section ${name} is compressed (extractSection inflates it)`);
  const hash = crypto.createHash('sha256');
  let pos = 0;
  for await (const chunk of pack.readSection(name)) {
    const b = chunk as Buffer;
    hash.update(b);
    if (!options.sparse || !isZero(b)) await fh.write(b, 0, b.length, pos);
    pos += b.length;
  }
  if (pos !== s.size || hash.digest('hex') !== s.sha256)
    throw new PackFormatError(pack.path, `its ${name} section does not match its sha256 (damaged or tampered with)`);
  if (options.sparse) await fh.truncate(pos);
}

/**
 * Why another user could change the pack's bytes after it was verified (the file or a directory
 * above it is theirs, or writable by them without the sticky bit), or undefined when none can.
 */
export function inPlaceWeakness(file: string): string | undefined {
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  let p = fs.realpathSync(file);
  for (;;) {
    const st = fs.statSync(p);
    if (uid !== undefined && st.uid !== uid && st.uid !== 0) return `${p} belongs to uid ${st.uid}`;
    const writable = (st.mode & 0o022) !== 0;
    if (writable && (st.isFile() || (st.mode & 0o1000) === 0)) return `${p} is writable by others`;
    const parent = path.dirname(p);
    if (parent === p) return undefined;
    p = parent;
  }
}

/**
 * A disk section for QEMU: the pack file itself at the section's range when only this user can
 * change it, else a verified copy in the cache.
 */
export async function sectionDisk(pack: PackFile, name: SectionName, cacheDir: string): Promise<SectionFile> {
  const s = pack.section(name);
  if (!s) throw new PackFormatError(pack.path, `it has no ${name} section`);
  if (!s.compression && inPlaceWeakness(pack.path) === undefined)
    return { path: pack.path, offset: s.fileOffset, size: s.size };
  return { path: await extractSection(pack, name, cacheDir) };
}
