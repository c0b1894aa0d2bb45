// Files and directories to and from a running machine, for `machine cp` and the HTTP API alike.
// The guest only ever supplies bytes: on the host the name and directory come from the caller,
// files are created fresh (staging + rename) and trees are extracted into a staging directory
// with node-tar's defences on (no absolute paths, no `..`, nothing extracted through a symlink,
// strict: any such entry fails the copy), only files, directories and links kept, no owners and
// no setuid/setgid/sticky bits; then one rename puts the result in place. An existing
// destination tree is never merged into.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SmolvmError, UsageError, tempPathFor } from '@smolvm/common';
import { AgentRequestError, MAX_TRANSFER_BYTES, type AgentClient } from '@smolvm/agent-protocol';
import { TOO_LARGE_REMEDY, TransferTooLargeError, guestFileError } from './guest-errors';

/** Passes bytes through, reporting the running total; `onBytes` may throw to fail the stream. */
export function byteCounter(onBytes: (n: number) => void): Transform {
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      try {
        onBytes(n);
      } catch (err) {
        return cb(err as Error);
      }
      cb(null, chunk);
    },
  });
}

export function assertUnderCap(bytes: number, what: string): void {
  if (bytes >= MAX_TRANSFER_BYTES) {
    throw new TransferTooLargeError(
      `total_size exceeds maximum: ${what} is ${bytes} bytes, the per-transfer cap is ${MAX_TRANSFER_BYTES} bytes (4 GiB)`,
      { remedy: TOO_LARGE_REMEDY },
    );
  }
}

/** Uploads `size` bytes from `source` to the guest file `guestPath` (atomic in the guest). */
export async function uploadFile(
  client: Pick<AgentClient, 'putFile'>,
  where: { machine: string; path: string },
  file: { size: number; mode: number; name: string },
  source: Readable,
): Promise<{ path: string; bytes: number }> {
  assertUnderCap(file.size, where.path);
  try {
    return await client.putFile(
      { path: where.path, size: file.size, mode: file.mode & 0o777, name: file.name },
      source,
    );
  } catch (err) {
    throw guestFileError(err, `${where.machine}:${where.path}`);
  }
}

/** Uploads a tar stream that holds one top-level directory `name` into `guestPath` (atomic in the guest). */
export async function uploadTar(
  client: Pick<AgentClient, 'putTree'>,
  where: { machine: string; path: string },
  name: string,
  archive: Readable,
): Promise<{ path: string; bytes: number }> {
  try {
    return await client.putTree({ path: where.path, name, maxBytes: MAX_TRANSFER_BYTES }, archive);
  } catch (err) {
    throw guestFileError(err, `${where.machine}:${where.path}`);
  }
}

/** node-tar, loaded by directory copies only: `machine run` and `exec` load this module too. */
function loadTar(): Promise<typeof import('tar')> {
  return import('tar');
}

/** Bytes of regular files under `dir` (what the cap is about), not following links. */
export function treeBytes(dir: string): number {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += fs.lstatSync(path.join(entry.parentPath, entry.name)).size;
  }
  return total;
}

/** A host directory as the tar stream `uploadTar` takes (its top-level entry is the directory's name). */
export async function packTree(hostDir: string): Promise<{ name: string; archive: Readable }> {
  const tar = await loadTar();
  const resolved = path.resolve(hostDir);
  const name = path.basename(resolved);
  return { name, archive: tar.c({ cwd: path.dirname(resolved), portable: true }, [name]) as unknown as Readable };
}

/** A guest file, or the tar stream of a guest directory; the caller consumes `data`. */
export type GuestEntry =
  | { kind: 'file'; size: number; mode: number; data: Readable }
  | { kind: 'directory'; data: Readable; done: Promise<{ bytes: number }> };

/** Opens a guest path for reading: a file as its bytes, a directory as a tar stream (bounded by the cap). */
export async function openGuestPath(
  client: Pick<AgentClient, 'getFile' | 'getTree'>,
  where: { machine: string; path: string },
  maxBytes = MAX_TRANSFER_BYTES,
): Promise<GuestEntry> {
  try {
    try {
      const file = await client.getFile({ path: where.path, maxBytes });
      return { kind: 'file', size: file.size, mode: file.mode, data: file.data };
    } catch (err) {
      if (!(err instanceof AgentRequestError && err.code === 'is-a-directory')) throw err;
    }
    const tree = await client.getTree({ path: where.path, maxBytes });
    return { kind: 'directory', data: tree.data, done: tree.done };
  } catch (err) {
    throw guestFileError(err, `${where.machine}:${where.path}`);
  }
}

/** Writes a guest file's bytes to `target` atomically (fresh staging file, fsync, rename). */
export async function saveGuestFile(
  file: { size: number; mode: number; data: Readable },
  target: string,
  onBytes: (n: number) => void = () => undefined,
): Promise<number> {
  const staging = tempPathFor(path.resolve(target));
  let done = false;
  let received = 0;
  try {
    // wx: a fresh file of ours; the guest chooses neither its name nor where it goes.
    const out = fs.createWriteStream(staging, { flags: 'wx', mode: 0o600 });
    await pipeline(
      file.data,
      byteCounter((n) => {
        received = n;
        if (n > file.size) throw new SmolvmError(`the machine sent more than the ${file.size} bytes it announced`);
        onBytes(n);
      }),
      out,
    );
    if (received !== file.size)
      throw new SmolvmError(`the transfer ended after ${received} of ${file.size} bytes`, {
        remedy: 'check that the machine is still running and try again',
      });
    const fd = fs.openSync(staging, 'r+');
    try {
      // Never setuid/setgid/sticky from a guest.
      fs.fchmodSync(fd, file.mode & 0o777);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(staging, target);
    done = true;
    return received;
  } finally {
    if (!done) fs.rmSync(staging, { force: true });
  }
}

/**
 * What a directory download may bring onto the host. The guest is asked to keep to the byte cap
 * too, but only the host's count holds against a guest that does not. Entries cost inodes and
 * time whatever their size: a million is more than a large source tree with its dependencies.
 */
export interface TreeLimits {
  /** Bytes of the tar stream (file contents plus headers), as the guest counts them. */
  maxBytes: number;
  maxEntries: number;
}
export const TREE_LIMITS: TreeLimits = { maxBytes: MAX_TRANSFER_BYTES, maxEntries: 1_000_000 };

const KEPT_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);

/**
 * Extracts the guest's tar stream of the directory `name` into the new host path `target`
 * (which must not exist; its parent must). Returns the tar bytes and how many special files
 * (devices, fifos) were skipped. `limits` is lowered only by tests.
 */
export async function extractGuestTree(
  tree: { data: Readable; done: Promise<unknown> },
  name: string,
  target: string,
  opts: { onBytes?: (n: number) => void; limits?: TreeLimits; what: string },
): Promise<{ bytes: number; skipped: number }> {
  const limits = opts.limits ?? TREE_LIMITS;
  if (fs.existsSync(target))
    throw new UsageError(`${target} already exists`, { remedy: 'copy to a new path, or remove it first' });
  const parent = path.dirname(target);
  if (!fs.statSync(parent, { throwIfNoEntry: false })?.isDirectory())
    throw new UsageError(`${parent} is not a directory`, { remedy: 'create it first' });
  const staging = path.join(
    parent,
    `.${path.basename(target).slice(0, 200)}.smolvm-${crypto.randomBytes(6).toString('hex')}.part`,
  );
  const tar = await loadTar();
  fs.mkdirSync(staging, { mode: 0o700 });
  let skipped = 0;
  let entryCount = 0;
  let received = 0;
  let failed = false;
  try {
    const extractor = tar.x({
      cwd: staging,
      strict: true,
      preserveOwner: false,
      filter: (_p, entry) => {
        if (++entryCount > limits.maxEntries) {
          extractor.abort(
            new TransferTooLargeError(`the machine sent more than ${limits.maxEntries} entries for ${opts.what}`, {
              remedy: TOO_LARGE_REMEDY,
            }),
          );
          return false;
        }
        const e = entry as { type?: string; mode?: number };
        const keep = KEPT_TYPES.has(e.type ?? '');
        if (!keep) skipped++;
        // Never setuid/setgid/sticky from a guest.
        if (typeof e.mode === 'number') e.mode &= 0o777;
        return keep;
      },
    });
    await Promise.all([
      pipeline(
        tree.data,
        byteCounter((n) => {
          received = n;
          if (n > limits.maxBytes)
            throw new TransferTooLargeError(
              `the machine sent more than the per-transfer cap of ${limits.maxBytes} bytes for ${opts.what}`,
              { remedy: TOO_LARGE_REMEDY },
            );
          opts.onBytes?.(n);
        }),
        extractor,
      ),
      tree.done,
    ]);
    const entries = fs.readdirSync(staging);
    if (entries.length !== 1 || entries[0] !== name || !fs.lstatSync(path.join(staging, name)).isDirectory()) {
      throw new SmolvmError(`the machine sent something other than the directory ${name}`);
    }
    fs.renameSync(path.join(staging, name), target);
    return { bytes: received, skipped };
  } catch (err) {
    failed = true;
    throw guestFileError(err, opts.what);
  } finally {
    await removeStaging(staging, failed);
  }
}

/**
 * node-tar may still finish a mkdir or write it had in flight when the extraction failed (it
 * offers no event for "all settled" after an error), recreating part of the staging directory
 * after a removal, or adding to it during one (rmSync then fails with ENOTEMPTY, which must not
 * replace the download's own error). Remove it until it has stayed gone for a while: the quiet
 * period counts from the last time something was there, up to a few seconds (under load those
 * in-flight operations took longer than the 200 ms this used to wait).
 */
async function removeStaging(dir: string, failed: boolean): Promise<void> {
  const remove = (): boolean => {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // Written to while being removed: the next round removes the rest.
    }
    return !fs.existsSync(dir);
  };
  if (remove() && !failed) return;
  const quietMs = 500;
  const deadline = Date.now() + 5_000;
  let lastSeen = Date.now();
  while (Date.now() - lastSeen < quietMs && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 25));
    if (fs.existsSync(dir)) {
      remove();
      lastSeen = Date.now();
    }
  }
}
