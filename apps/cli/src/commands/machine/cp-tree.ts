// `machine cp` of directories, as tar streams (node-tar on the host, busybox tar in the guest).
// Host side of a download: the guest's tar is extracted into a staging directory beside the
// destination with node-tar's defences on (no absolute paths, no `..`, nothing extracted through a
// symlink, strict: any such entry fails the copy), only files, directories and links kept, no
// owners and no setuid/setgid/sticky bits; then one rename puts the tree in place. The
// destination must not exist yet: nothing of the user's is merged into or overwritten.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import { SmolvmError, UsageError } from '@smolvm/common';
import { MAX_TRANSFER_BYTES, type AgentClient } from '@smolvm/agent-protocol';
import { transferProgress } from '../../output/transfer';
import { counter, explain, summary, type GuestPath } from './cp-common';
import { cliMachines } from './machines';

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

/** Bytes of regular files under `dir` (what the cap is about), not following links. */
function treeBytes(dir: string): number {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += fs.lstatSync(path.join(entry.parentPath, entry.name)).size;
  }
  return total;
}

export async function uploadTree(hostDir: string, dst: GuestPath, quiet: boolean): Promise<void> {
  const resolved = path.resolve(hostDir);
  const name = path.basename(resolved);
  const total = treeBytes(resolved);
  if (total >= MAX_TRANSFER_BYTES) {
    throw new UsageError(`total_size exceeds maximum: ${hostDir} holds ${total} bytes of files, the per-transfer cap is ${MAX_TRANSFER_BYTES} bytes (4 GiB)`, {
      remedy: 'mount the host directory with --volume instead',
    });
  }
  const client = await cliMachines().connect(dst.machine);
  const progress = transferProgress({ quiet, total, verb: 'uploading' });
  const t0 = performance.now();
  try {
    const archive = tar.c({ cwd: path.dirname(resolved), portable: true }, [name]) as unknown as Readable;
    const result = await client.putTree({ path: dst.path, name, maxBytes: MAX_TRANSFER_BYTES }, archive.pipe(counter(progress.update)));
    progress.done();
    summary('uploaded', result.bytes, `${dst.machine}:${result.path}`, t0, 'bytes of tar');
  } catch (err) {
    progress.done();
    throw explain(err, `${dst.machine}:${dst.path}`);
  } finally {
    client.close();
  }
}

/** `limits` is lowered only by tests; production uses TREE_LIMITS. */
export async function downloadTree(client: AgentClient, src: GuestPath, hostPath: string, quiet: boolean, limits: TreeLimits = TREE_LIMITS): Promise<void> {
  const name = path.posix.basename(src.path.replace(/\/+$/, ''));
  if (!name || name === '.' || name === '..') throw new UsageError(`${src.path} does not name a directory to copy`, { remedy: 'name it, e.g. dev:/workspace/results' });
  const target = path.resolve(fs.statSync(hostPath, { throwIfNoEntry: false })?.isDirectory() ? path.join(hostPath, name) : hostPath);
  if (fs.existsSync(target)) throw new UsageError(`${target} already exists`, { remedy: 'copy to a new path, or remove it first' });
  const parent = path.dirname(target);
  if (!fs.statSync(parent, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`${parent} is not a directory`, { remedy: 'create it first' });
  const staging = path.join(parent, `.${path.basename(target).slice(0, 200)}.smolvm-${crypto.randomBytes(6).toString('hex')}.part`);
  fs.mkdirSync(staging, { mode: 0o700 });
  const t0 = performance.now();
  const progress = transferProgress({ quiet, total: 0, verb: 'downloading' });
  let skipped = 0;
  let entryCount = 0;
  let received = 0;
  let failed = false;
  const remedy = 'mount the directory with --volume instead of copying';
  try {
    const tree = await client.getTree({ path: src.path, maxBytes: limits.maxBytes });
    const extractor = tar.x({
      cwd: staging,
      strict: true,
      preserveOwner: false,
      filter: (_p, entry) => {
        if (++entryCount > limits.maxEntries) {
          extractor.abort(new UsageError(`the machine sent more than ${limits.maxEntries} entries for ${src.path}`, { remedy }));
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
        counter((n) => {
          received = n;
          if (n > limits.maxBytes) throw new UsageError(`the machine sent more than the per-transfer cap of ${limits.maxBytes} bytes for ${src.path}`, { remedy });
          progress.update(n);
        }),
        extractor,
      ),
      tree.done,
    ]);
    progress.done();
    const entries = fs.readdirSync(staging);
    if (entries.length !== 1 || entries[0] !== name || !fs.lstatSync(path.join(staging, name)).isDirectory()) {
      throw new SmolvmError(`the machine sent something other than the directory ${name}`);
    }
    fs.renameSync(path.join(staging, name), target);
    if (skipped > 0) process.stderr.write(`warning: skipped ${skipped} special file${skipped > 1 ? 's' : ''} (devices, fifos)\n`);
    summary('downloaded', received, target, t0, 'bytes of tar');
  } catch (err) {
    failed = true;
    progress.done();
    throw explain(err, `${src.machine}:${src.path}`);
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
