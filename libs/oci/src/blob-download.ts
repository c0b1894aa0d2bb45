// Downloads one blob into the store: streamed to a partial file while hashing, resumed with a
// Range request after a dropped connection (re-hashing the partial prefix from disk), and moved
// into the store only when size and sha256 both match the descriptor.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { digestHex } from './digest';
import { SmolvmError } from '@smolvm/common';
import { DigestMismatchError, InterruptedTransferError, SizeMismatchError } from './errors';
import { claimIngest } from './ingest';
import type { Descriptor } from './manifest';
import type { RegistryClient, RepositoryRef } from './registry-client';
import type { ContentStore } from './store';
import { backoffDelay, isRetryableNetworkError } from './transport';

export interface BlobDownloadOptions {
  signal?: AbortSignal;
  /** Bytes of this blob present so far (including a resumed prefix). */
  onProgress?: (bytes: number) => void;
  onStart?: (resumedFrom: number) => void;
  onRetry?: (attempt: number, error: Error) => void;
}

const WRITE_BATCH_BYTES = 1024 * 1024;

async function hashPrefix(file: string, length: number): Promise<crypto.Hash> {
  const hash = crypto.createHash('sha256');
  if (length === 0) return hash;
  for await (const chunk of fs.createReadStream(file, { start: 0, end: length - 1 })) hash.update(chunk as Buffer);
  return hash;
}

function contentRangeStart(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  const m = text ? /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(text.trim()) : null;
  return m ? Number(m[1]) : undefined;
}

/** Returns whether the blob was already in the store. */
export async function downloadBlob(
  client: RegistryClient,
  repo: RepositoryRef,
  desc: Descriptor,
  store: ContentStore,
  options: BlobDownloadOptions = {},
): Promise<{ cached: boolean }> {
  if (store.hasBlob(desc.digest, desc.size)) {
    options.onProgress?.(desc.size);
    return { cached: true };
  }
  const what = `blob ${desc.digest} of ${repo.registry}/${repo.repository}`;
  const ingest = claimIngest(store.ingestDir, digestHex(desc.digest));
  options.onStart?.(Math.min(ingest.resumedFrom, desc.size));
  const policy = client.transport.retry;
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await attemptDownload(client, repo, desc, ingest.path, what, options);
        store.commitBlobFile(ingest.path, desc.digest);
        return { cached: false };
      } catch (err) {
        if (err instanceof DigestMismatchError || err instanceof SizeMismatchError) {
          // Unverifiable bytes are never kept, not even as a partial to resume from.
          fs.rmSync(ingest.path, { force: true });
          throw err;
        }
        if (options.signal?.aborted || attempt >= policy.retries || !resumable(err)) throw err;
        options.onRetry?.(attempt + 1, err as Error);
        await sleep(backoffDelay(policy, attempt), undefined, { signal: options.signal });
      }
    }
  } finally {
    ingest.release();
  }
}

/**
 * Only transfers cut midway are resumed here. Failures to get an answer at all were already
 * retried by the transport; retrying them again would multiply the waits.
 */
function resumable(err: unknown): boolean {
  if (err instanceof InterruptedTransferError) return true;
  return !(err instanceof SmolvmError) && isRetryableNetworkError(err);
}

async function attemptDownload(
  client: RegistryClient,
  repo: RepositoryRef,
  desc: Descriptor,
  file: string,
  what: string,
  options: BlobDownloadOptions,
): Promise<void> {
  let offset = fs.statSync(file).size;
  if (offset > desc.size) {
    fs.truncateSync(file, 0);
    offset = 0;
  }
  let hash = await hashPrefix(file, offset);
  if (offset === desc.size) {
    // A complete partial from an earlier run: it only needs checking.
    verify(hash, desc, offset, what);
    return;
  }
  const res = await client.openBlob(repo, desc.digest, { offset, signal: options.signal });
  if (offset > 0 && (res.status !== 206 || contentRangeStart(res.headers['content-range']) !== offset)) {
    // The server ignored or mangled our Range: start over from byte 0 with what it sent if it is
    // the whole blob, or ask again.
    if (res.status !== 200) {
      await res.body.dump().catch(() => {});
      fs.truncateSync(file, 0);
      throw new InterruptedTransferError(
        `${what}: the registry answered a resume request with HTTP ${res.status}; starting over`,
      );
    }
    fs.truncateSync(file, 0);
    offset = 0;
    hash = crypto.createHash('sha256');
  }
  options.onProgress?.(offset);
  const fh = await fs.promises.open(file, 'a');
  let written = offset;
  // Chunks arrive at socket-read size (~64 KiB); one writev per MiB saves most of the
  // per-write round trips to the thread pool, which showed in profiles of a pull.
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const flush = async (): Promise<void> => {
    if (pendingBytes === 0) return;
    const buffers = pending;
    pending = [];
    pendingBytes = 0;
    await fh.writev(buffers);
  };
  try {
    try {
      for await (const chunk of res.body) {
        const buf = chunk as Buffer;
        if (written + buf.length > desc.size) {
          res.body.destroy();
          throw new SizeMismatchError(desc.size, written + buf.length, what);
        }
        hash.update(buf);
        pending.push(buf);
        pendingBytes += buf.length;
        written += buf.length;
        if (pendingBytes >= WRITE_BATCH_BYTES) await flush();
        options.onProgress?.(written);
      }
    } finally {
      // Whatever arrived intact before a cut is kept: the next attempt resumes after it.
      await flush();
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  if (written < desc.size)
    throw new InterruptedTransferError(`${what}: the connection ended after ${written} of ${desc.size} bytes`);
  verify(hash, desc, written, what);
}

function verify(hash: crypto.Hash, desc: Descriptor, size: number, what: string): void {
  if (size !== desc.size) throw new SizeMismatchError(desc.size, size, what);
  const actual = `sha256:${hash.digest('hex')}`;
  if (actual !== desc.digest) throw new DigestMismatchError(desc.digest, actual, what);
}
