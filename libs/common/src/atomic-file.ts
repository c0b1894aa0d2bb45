// Crash-safe file replacement: a reader sees the old file or the new one, never a torn write.
import fs from 'node:fs';
import path from 'node:path';
import { randomHex } from './random';

/** A temp name beside `target` (same filesystem, so rename is atomic), hidden and unique. */
export function tempPathFor(target: string): string {
  const suffix = `${process.pid}.${randomHex(4)}`;
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${suffix}`);
}

/** fsync a file or directory by name: a file's data, or a rename or unlink inside a directory, survives a power cut. */
export function fsyncPath(file: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** fsync a directory so a rename or unlink inside it survives a power cut. */
export function fsyncDir(dir: string): void {
  fsyncPath(dir);
}

/** Writes temp, fsyncs, renames over `target`, fsyncs the directory. Owner-only unless `mode` says otherwise. */
export function writeFileAtomic(target: string, data: string | Uint8Array, mode = 0o600): void {
  const tmp = tempPathFor(target);
  const fd = fs.openSync(tmp, 'wx', mode);
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  commitTempFile(tmp, target);
}

/** Renames a complete, fsynced temp file over `target` and makes the rename durable; on failure the temp file goes. */
export function commitTempFile(tmp: string, target: string): void {
  try {
    fs.renameSync(tmp, target);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(path.dirname(target));
}

export function writeJsonAtomic(target: string, value: unknown, mode = 0o600): void {
  writeFileAtomic(target, JSON.stringify(value, null, 2) + '\n', mode);
}

/**
 * Marks a cached file or directory as just used (its times set to now), for caches that evict
 * what has not been used for a while. Quiet: on a read-only cache the entry only looks older.
 */
export function markUsed(target: string): void {
  try {
    const now = new Date();
    fs.utimesSync(target, now, now);
  } catch {
    // Read-only or gone: nothing to mark.
  }
}
