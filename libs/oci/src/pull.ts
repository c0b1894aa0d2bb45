// Pull: reference -> manifest (choosing a platform from an index) -> config and layers into the
// store, in parallel -> an image record. The record is written last, so a failed pull leaves
// no image behind, only verified blobs that gc can collect.
import { SmolvmError } from '@smolvm/common';
import { downloadBlob } from './blob-download';
import { mapLimit } from './concurrency';
import { RegistryError } from './errors';
import { MAX_CONFIG_BYTES, configPlatform, parseImageConfig, type ImageConfig } from './image-config';
import { isImageConfigMediaType, isImageManifestMediaType } from './media-types';
import type { Descriptor, ImageManifest } from './manifest';
import {
  formatPlatform,
  hostPlatform,
  parsePlatform,
  platformMatches,
  selectManifest,
  type Platform,
} from './platform';
import type { ProgressListener } from './progress';
import { formatReference, toReference, type ImageReference } from './reference';
import type { FetchedManifest, RegistryClient, RepositoryRef } from './registry-client';
import type { ContentStore, ImageRecord } from './store';

export interface PullOptions {
  /** "linux/arm64/v8" or a Platform; defaults to linux + this host's architecture. */
  platform?: Platform | string;
  /** Parallel blob downloads. */
  concurrency?: number;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

export interface PulledImage {
  record: ImageRecord;
  manifest: ImageManifest;
  config: ImageConfig;
  /** Bytes fetched over the network in this pull (0 when everything was cached). */
  downloadedBytes: number;
}

export const DEFAULT_PULL_CONCURRENCY = 3;

export function wantedPlatform(platform: Platform | string | undefined): { platform: Platform; explicit: boolean } {
  if (platform === undefined) return { platform: hostPlatform(), explicit: false };
  return { platform: typeof platform === 'string' ? parsePlatform(platform) : platform, explicit: true };
}

/** Where to fetch from: configured mirrors first, in order, then the registry itself. */
async function fetchTopManifest(
  client: RegistryClient,
  ref: ImageReference,
  signal?: AbortSignal,
): Promise<{ source: ImageReference; fetched: FetchedManifest }> {
  const mirrors = client.config.settings(ref.registry).mirrors ?? [];
  const errors: string[] = [];
  for (const mirror of mirrors) {
    const source = { ...ref, registry: mirror };
    try {
      return { source, fetched: await client.getManifest(source, { signal }) };
    } catch (err) {
      if (signal?.aborted) throw err;
      errors.push(`${mirror}: ${(err as Error).message}`);
    }
  }
  try {
    return { source: ref, fetched: await client.getManifest(ref, { signal }) };
  } catch (err) {
    if (errors.length && err instanceof SmolvmError) {
      throw new RegistryError(`${err.message} (mirrors failed too: ${errors.join('; ')})`, undefined, undefined, {
        remedy: err.remedy,
        cause: err,
      });
    }
    throw err;
  }
}

export async function pullImage(
  client: RegistryClient,
  store: ContentStore,
  input: string | ImageReference,
  options: PullOptions = {},
): Promise<PulledImage> {
  const ref = toReference(input);
  const reference = formatReference(ref);
  const wanted = wantedPlatform(options.platform);
  const { source, fetched: top } = await fetchTopManifest(client, ref, options.signal);

  let manifestFetch = top;
  let indexDigest: string | undefined;
  if (top.parsed.kind === 'index') {
    indexDigest = top.digest;
    const chosen = selectManifest(top.parsed.index.manifests, wanted.platform, `image ${reference}`);
    if (!isImageManifestMediaType(chosen.mediaType)) {
      throw new SmolvmError(
        `image ${reference}: the ${formatPlatform(wanted.platform)} entry is a nested index, which smolvm does not follow`,
      );
    }
    manifestFetch = await client.getManifest(source, { selector: chosen.digest, signal: options.signal });
    if (manifestFetch.bytes.length !== chosen.size) {
      throw new RegistryError(
        `image ${reference}: manifest ${chosen.digest} has ${manifestFetch.bytes.length} bytes, the index says ${chosen.size}`,
      );
    }
  }
  if (manifestFetch.parsed.kind !== 'image')
    throw new SmolvmError(`image ${reference}: an index points to another index`);
  const manifest = manifestFetch.parsed.manifest;
  if (!isImageConfigMediaType(manifest.config.mediaType)) {
    throw new SmolvmError(`${reference} is not a container image (config media type ${manifest.config.mediaType})`, {
      remedy: 'pull an OCI or Docker container image',
    });
  }

  if (manifest.config.size > MAX_CONFIG_BYTES) {
    throw new RegistryError(
      `image ${reference}: its config is ${manifest.config.size} bytes, more than the ${MAX_CONFIG_BYTES}-byte bound`,
      undefined,
      undefined,
      {
        remedy: `${source.registry} serves a manifest no image builder writes; check the reference, and the registry`,
      },
    );
  }

  const blobs: Descriptor[] = [manifest.config, ...manifest.layers];
  const unique = [...new Map(blobs.map((b) => [b.digest, b])).values()];
  const totalBytes = unique.reduce((n, b) => n + b.size, 0);
  options.onProgress?.({
    type: 'resolved',
    reference,
    manifestDigest: manifestFetch.digest,
    platform: formatPlatform(wanted.platform),
    blobs: unique.map((b) => ({ digest: b.digest, size: b.size, mediaType: b.mediaType })),
    totalBytes,
  });

  const downloadedBytes = await downloadBlobs(client, source, store, unique, options);

  const config = parseImageConfig(store.readBlob(manifest.config.digest));
  if (config.diffIds.length !== 0 && config.diffIds.length !== manifest.layers.length) {
    throw new SmolvmError(
      `image ${reference}: config lists ${config.diffIds.length} layers, the manifest ${manifest.layers.length}`,
    );
  }
  const platform = configPlatform(config);
  if (wanted.explicit && !platformMatches(platform, wanted.platform)) {
    throw new SmolvmError(
      `image ${reference} is ${formatPlatform(platform)}, not the requested ${formatPlatform(wanted.platform)}`,
      {
        remedy: `pull with platform ${formatPlatform(platform)}, or use an image built for ${formatPlatform(wanted.platform)}`,
      },
    );
  }

  // Manifests enter the store after their blobs: a present manifest implies a complete image.
  store.putBlob(manifestFetch.bytes, manifestFetch.digest);
  if (indexDigest) store.putBlob(top.bytes, indexDigest);
  const record: ImageRecord = {
    reference,
    registry: ref.registry,
    repository: ref.repository,
    platform,
    manifestDigest: manifestFetch.digest,
    configDigest: manifest.config.digest,
    size: manifestFetch.bytes.length + totalBytes,
    pulledAt: new Date().toISOString(),
  };
  if (ref.tag !== undefined) record.tag = ref.tag;
  if (ref.digest !== undefined) record.digest = ref.digest;
  if (indexDigest) record.indexDigest = indexDigest;
  store.putImage(record);
  options.onProgress?.({ type: 'done', reference, manifestDigest: manifestFetch.digest, downloadedBytes });
  return { record, manifest, config, downloadedBytes };
}

/**
 * Downloads blobs in parallel into the store, with progress events; returns the bytes fetched.
 * One failed blob fails them all: the siblings stop instead of finishing gigabytes for nothing,
 * and their partial files stay, so the next pull resumes them.
 */
export async function downloadBlobs(
  client: RegistryClient,
  source: RepositoryRef,
  store: ContentStore,
  blobs: Descriptor[],
  options: { concurrency?: number; onProgress?: ProgressListener; signal?: AbortSignal },
): Promise<number> {
  const totalBytes = blobs.reduce((n, b) => n + b.size, 0);
  const done = new Map<string, number>();
  let downloadedBytes = 0;
  const overall = (): number => [...done.values()].reduce((a, b) => a + b, 0);
  const siblings = new AbortController();
  const stop = (): void => siblings.abort();
  if (options.signal?.aborted) siblings.abort();
  options.signal?.addEventListener('abort', stop, { once: true });
  try {
    await mapLimit(blobs, options.concurrency ?? DEFAULT_PULL_CONCURRENCY, async (desc) => {
      try {
        await fetchOne(desc);
      } catch (err) {
        siblings.abort();
        throw err;
      }
    });
  } finally {
    options.signal?.removeEventListener('abort', stop);
  }
  return downloadedBytes;

  async function fetchOne(desc: Descriptor): Promise<void> {
    let startedAt = 0;
    const result = await downloadBlob(client, source, desc, store, {
      signal: siblings.signal,
      onStart: (resumedFrom) => {
        startedAt = resumedFrom;
        options.onProgress?.({ type: 'blob-start', digest: desc.digest, size: desc.size, resumedFrom });
      },
      onProgress: (bytes) => {
        done.set(desc.digest, bytes);
        options.onProgress?.({
          type: 'blob-progress',
          digest: desc.digest,
          bytes,
          size: desc.size,
          overallBytes: overall(),
          overallTotal: totalBytes,
        });
      },
      onRetry: (attempt, error) =>
        options.onProgress?.({ type: 'blob-retry', digest: desc.digest, attempt, error: error.message }),
    });
    if (!result.cached) downloadedBytes += desc.size - startedAt;
    options.onProgress?.({ type: 'blob-done', digest: desc.digest, size: desc.size, cached: result.cached });
  }
}
