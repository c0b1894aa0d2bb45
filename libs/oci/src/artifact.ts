// OCI artifacts (OCI image spec 1.1): a manifest with an `artifactType`, a config of the
// artifact's own media type and one layer per blob, listed in an image index keyed by platform.
// Push streams blobs from their source (HEAD, then a cross-repository mount, then an upload);
// pull resolves the platform, bounds every size before downloading and verifies every digest.
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { SmolvmError, UsageError } from '@smolvm/common';
import { parseArtifactReference, withDefaultTag } from '@smolvm/config';
import { BlobLocations } from './blob-locations';
import { mapLimit } from './concurrency';
import { sha256Digest } from './digest';
import { ImageNotFoundError, RegistryError } from './errors';
import { MediaType } from './media-types';
import type { Descriptor, ImageIndex, ImageManifest } from './manifest';
import { formatPlatform, normalizePlatform, platformMatches, selectManifest, type Platform } from './platform';
import type { ProgressListener } from './progress';
import { pushBlob, pushManifest, type BlobPushOutcome, type BlobUpload } from './push';
import { downloadBlobs, wantedPlatform } from './pull';
import { formatReference, toReference, type ImageReference } from './reference';
import type { RegistryConfig } from './credentials';
import type { FetchedManifest, RegistryClient } from './registry-client';
import type { ContentStore } from './store';

/** The artifact type of a `.smolmachine` pushed to a registry. */
export const MACHINE_ARTIFACT_TYPE = 'application/vnd.smolvm.machine.v1';

/** Artifacts are OCI-only: Docker's media types have no artifactType. */
const ARTIFACT_ACCEPT = [MediaType.OciIndex, MediaType.OciManifest].join(', ');

export interface ArtifactLayer extends BlobUpload {
  mediaType: string;
  annotations?: Record<string, string>;
}

export interface ArtifactToPush {
  artifactType: string;
  /** Small and in memory (for a pack: its manifest). */
  config: { mediaType: string; bytes: Buffer };
  /** Streamed from their source; the digest and size must be known (and true: the registry checks). */
  layers: ArtifactLayer[];
  /** The platform the artifact serves: its key in the index under the tag. */
  platform: Platform;
  annotations?: Record<string, string>;
}

export type PushEvent =
  | { type: 'blob-start'; digest: string; size: number; mediaType: string }
  | { type: 'blob-progress'; digest: string; bytes: number; size: number }
  | { type: 'blob-done'; digest: string; size: number; outcome: BlobPushOutcome }
  | { type: 'done'; reference: string; manifestDigest: string; indexDigest: string; uploadedBytes: number };

export interface ArtifactPushOptions {
  /** Upload blobs larger than this in PATCH chunks of this size. */
  chunkSize?: number;
  /** Parallel blob uploads. */
  concurrency?: number;
  onProgress?: (event: PushEvent) => void;
  signal?: AbortSignal;
  /** Hints for cross-repository mounts, updated with what this push placed. */
  locations?: BlobLocations;
}

export interface PushedArtifact {
  /** The reference pushed, canonical (`registry/repository:tag`). */
  reference: string;
  manifest: Descriptor;
  index: Descriptor;
  blobs: Array<{ digest: string; size: number; outcome: BlobPushOutcome }>;
  /** Bytes sent (blobs that were neither present nor mountable). */
  uploadedBytes: number;
}

/**
 * An artifact reference as users write it (`python-dev`, `binsquare/custom:v1`,
 * `smolmachines.com/python-dev@sha256:...`): names without a registry go to the configured
 * artifact registry (`[artifacts] registry` in registries.toml, else registry.smolmachines.com).
 */
export function resolveArtifactReference(input: string | ImageReference, config: RegistryConfig): ImageReference {
  return typeof input === 'string'
    ? withDefaultTag(parseArtifactReference(input, config.artifactRegistry))
    : toReference(input);
}

/** Index entries kept from what the tag held: other platforms of the same artifact type. */
function keptEntries(existing: FetchedManifest | undefined, artifactType: string, platform: Platform): Descriptor[] {
  if (!existing || existing.parsed.kind !== 'index') return [];
  const entries = existing.parsed.index.manifests;
  if (!entries.every((m) => m.artifactType === artifactType && m.platform)) return [];
  return entries.filter(
    (m) => !platformMatches(m.platform as Platform, platform) || !platformMatches(platform, m.platform as Platform),
  );
}

/** Pushes blobs, the manifest (by digest), then the index under the tag, keeping other platforms. */
export async function pushArtifact(
  client: RegistryClient,
  input: string | ImageReference,
  artifact: ArtifactToPush,
  options: ArtifactPushOptions = {},
): Promise<PushedArtifact> {
  const ref = resolveArtifactReference(input, client.config);
  if (ref.tag === undefined || ref.digest !== undefined) {
    throw new UsageError(`cannot push to ${formatReference(ref)}: a push needs a tag, not a digest`, {
      remedy: `push to a tag such as ${ref.registry}/${ref.repository}:latest; the digest is printed afterwards`,
    });
  }
  const repo = { registry: ref.registry, repository: ref.repository };
  const platform = normalizePlatform(artifact.platform);
  const blobs = [{ ...uploadOf(artifact.config.bytes), mediaType: artifact.config.mediaType }, ...artifact.layers];
  const unique = [...new Map(blobs.map((b) => [b.digest, b])).values()];
  const pushed = await mapLimit(unique, options.concurrency ?? 3, async (blob) => {
    options.onProgress?.({ type: 'blob-start', digest: blob.digest, size: blob.size, mediaType: blob.mediaType });
    const result = await pushBlob(client, repo, blob, {
      chunkSize: options.chunkSize,
      signal: options.signal,
      mountFrom: options.locations?.find(repo.registry, blob.digest),
      onProgress: (bytes) =>
        options.onProgress?.({ type: 'blob-progress', digest: blob.digest, bytes, size: blob.size }),
    });
    options.onProgress?.({ type: 'blob-done', digest: blob.digest, size: blob.size, outcome: result.outcome });
    return result;
  });
  options.locations?.remember(
    repo.registry,
    repo.repository,
    pushed.map((b) => b.digest),
  );

  const descriptor = (b: ArtifactLayer | (typeof blobs)[number]): Descriptor => ({
    mediaType: b.mediaType,
    digest: b.digest,
    size: b.size,
    ...('annotations' in b && b.annotations ? { annotations: b.annotations } : {}),
  });
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    artifactType: artifact.artifactType,
    config: descriptor(blobs[0]),
    layers: artifact.layers.map(descriptor),
    ...(artifact.annotations ? { annotations: artifact.annotations } : {}),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const manifestDigest = await pushManifest(
    client,
    { ...repo, digest: sha256Digest(manifestBytes) },
    manifestBytes,
    MediaType.OciManifest,
    options.signal,
  );
  const manifestDesc: Descriptor = {
    mediaType: MediaType.OciManifest,
    digest: manifestDigest,
    size: manifestBytes.length,
    platform,
    artifactType: artifact.artifactType,
  };

  const existing = await client
    .getManifest(ref, { accept: ARTIFACT_ACCEPT, signal: options.signal })
    .catch((err: unknown) => {
      if (err instanceof ImageNotFoundError) return undefined;
      throw err;
    });
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: [...keptEntries(existing, artifact.artifactType, platform), manifestDesc],
  };
  const indexBytes = Buffer.from(JSON.stringify(index));
  const indexDigest = await pushManifest(client, ref, indexBytes, MediaType.OciIndex, options.signal);
  const uploadedBytes = pushed.filter((b) => b.outcome === 'uploaded').reduce((n, b) => n + b.size, 0);
  const reference = formatReference(ref);
  options.onProgress?.({ type: 'done', reference, manifestDigest, indexDigest, uploadedBytes });
  return {
    reference,
    manifest: { mediaType: MediaType.OciManifest, digest: manifestDigest, size: manifestBytes.length },
    index: { mediaType: MediaType.OciIndex, digest: indexDigest, size: indexBytes.length },
    blobs: pushed,
    uploadedBytes,
  };
}

function uploadOf(bytes: Buffer): BlobUpload {
  return { digest: sha256Digest(bytes), size: bytes.length, open: () => Readable.from([bytes]) };
}

// ---- pull ----

export interface ArtifactLimits {
  /** The config is read into memory. */
  configBytes: number;
  /** One layer. */
  blobBytes: number;
  /** Config and layers together. */
  totalBytes: number;
  layers: number;
}

/** Bounds on what a registry can make us store; a pack's root filesystem is the big one. */
export const DEFAULT_ARTIFACT_LIMITS: ArtifactLimits = {
  configBytes: 1024 * 1024,
  blobBytes: 64 * 1024 ** 3,
  totalBytes: 64 * 1024 ** 3,
  layers: 64,
};

export interface ArtifactPullOptions {
  /** The artifact type the manifest must declare. */
  artifactType: string;
  /** How messages name what was expected ("a smolvm pack"); "an artifact of type T" by default. */
  kindName?: string;
  /** Guest platform to select from the index; linux + this host's architecture by default. */
  platform?: Platform | string;
  limits?: Partial<ArtifactLimits>;
  concurrency?: number;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
  /** Records where the blobs came from, for mounts on later pushes. */
  locations?: BlobLocations;
}

export interface PulledArtifact {
  reference: string;
  manifestDigest: string;
  /** The index the manifest was chosen from, when the reference named one. */
  indexDigest?: string;
  platform?: Platform;
  manifest: ImageManifest;
  config: Buffer;
  /** The layers in manifest order, each verified in the store at `path` (read-only). */
  layers: Array<Descriptor & { path: string }>;
  downloadedBytes: number;
}

/** An answer whose Content-Type contradicts its body is not trusted to be what we asked for. */
function checkContentType(fetched: FetchedManifest, shown: string, registry: string): void {
  if (fetched.contentType !== undefined && fetched.contentType !== fetched.mediaType) {
    throw new RegistryError(
      `${shown}: ${registry} sent Content-Type ${fetched.contentType} for a ${fetched.mediaType} document`,
      undefined,
      undefined,
      {
        remedy:
          'the registry mislabels manifests; check the reference and the registry (it must serve OCI manifests as pushed)',
      },
    );
  }
  if (fetched.mediaType !== MediaType.OciIndex && fetched.mediaType !== MediaType.OciManifest) {
    throw new SmolvmError(`${shown} is a ${fetched.mediaType} document, not an OCI artifact`, {
      remedy: 'check the reference: it names a container image, not an artifact',
    });
  }
}

/** Free bytes of the file system that holds `dir` (or its nearest existing parent). */
function freeBytes(dir: string): number | undefined {
  for (let d = dir; ; d = path.dirname(d)) {
    try {
      const st = fs.statfsSync(d);
      return st.bavail * st.bsize;
    } catch {
      if (path.dirname(d) === d) return undefined;
    }
  }
}

function formatBytes(n: number): string {
  return n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(1)} GiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

/** Resolves the reference for a platform, checks type and bounds, downloads and verifies every blob. */
export async function pullArtifact(
  client: RegistryClient,
  store: ContentStore,
  input: string | ImageReference,
  options: ArtifactPullOptions,
): Promise<PulledArtifact> {
  const ref = resolveArtifactReference(input, client.config);
  const reference = formatReference(ref);
  const limits = { ...DEFAULT_ARTIFACT_LIMITS, ...options.limits };
  const wanted = wantedPlatform(options.platform);
  const top = await client
    .getManifest(ref, { accept: ARTIFACT_ACCEPT, signal: options.signal })
    .catch((err: unknown) => {
      // The client speaks of images; an artifact is named as what it is.
      if (err instanceof ImageNotFoundError)
        throw new ImageNotFoundError(`${reference} not found`, { remedy: err.remedy });
      throw err;
    });
  checkContentType(top, reference, ref.registry);

  let fetched = top;
  let indexDigest: string | undefined;
  let platform: Platform | undefined;
  if (top.parsed.kind === 'index') {
    indexDigest = top.digest;
    const chosen = selectManifest(top.parsed.index.manifests, wanted.platform, reference);
    platform = chosen.platform;
    fetched = await client.getManifest(ref, {
      selector: chosen.digest,
      accept: ARTIFACT_ACCEPT,
      signal: options.signal,
    });
    checkContentType(fetched, `${reference} (${formatPlatform(wanted.platform)})`, ref.registry);
    if (fetched.bytes.length !== chosen.size) {
      throw new RegistryError(
        `${reference}: manifest ${chosen.digest} has ${fetched.bytes.length} bytes, the index says ${chosen.size}`,
      );
    }
  }
  if (fetched.parsed.kind !== 'image')
    throw new SmolvmError(`${reference}: an index points to another index, which smolvm does not follow`);
  const manifest = fetched.parsed.manifest;
  if (manifest.artifactType !== options.artifactType) {
    const wantedKind = options.kindName ?? `an artifact of type ${options.artifactType}`;
    throw new SmolvmError(
      manifest.artifactType === undefined
        ? `${reference} is a container image, not ${wantedKind}`
        : `${reference} is an artifact of type ${manifest.artifactType}, not ${wantedKind}`,
      { remedy: 'check the reference' },
    );
  }

  const tooBig = (what: string, size: number, bound: number): RegistryError =>
    new RegistryError(
      `${reference}: ${what} is ${size} bytes, more than the ${bound}-byte bound`,
      undefined,
      undefined,
      {
        remedy: `${ref.registry} serves an artifact larger than smolvm accepts; check the reference`,
      },
    );
  if (manifest.config.size > limits.configBytes) throw tooBig('its config', manifest.config.size, limits.configBytes);
  if (manifest.layers.length > limits.layers) {
    throw new RegistryError(
      `${reference}: ${manifest.layers.length} layers, more than the ${limits.layers} an artifact may have`,
    );
  }
  for (const layer of manifest.layers)
    if (layer.size > limits.blobBytes) throw tooBig(`layer ${layer.digest}`, layer.size, limits.blobBytes);
  const unique = [...new Map([manifest.config, ...manifest.layers].map((b) => [b.digest, b])).values()];
  const totalBytes = unique.reduce((n, b) => n + b.size, 0);
  if (totalBytes > limits.totalBytes) throw tooBig('the whole artifact', totalBytes, limits.totalBytes);
  const missing = unique.filter((b) => !store.hasBlob(b.digest, b.size)).reduce((n, b) => n + b.size, 0);
  const free = freeBytes(store.root);
  if (free !== undefined && missing > free) {
    throw new SmolvmError(
      `${reference} needs ${formatBytes(missing)} of downloads, and ${store.root} has ${formatBytes(free)} free`,
      {
        remedy: "free disk space (for example with 'smolvm machine prune'), then pull again",
      },
    );
  }

  options.onProgress?.({
    type: 'resolved',
    reference,
    manifestDigest: fetched.digest,
    platform: formatPlatform(platform ?? wanted.platform),
    blobs: unique.map((b) => ({ digest: b.digest, size: b.size, mediaType: b.mediaType })),
    totalBytes,
  });
  const downloadedBytes = await downloadBlobs(client, ref, store, unique, options);

  const config = store.readBlob(manifest.config.digest);
  store.putBlob(fetched.bytes, fetched.digest);
  if (indexDigest) store.putBlob(top.bytes, indexDigest);
  options.locations?.remember(
    ref.registry,
    ref.repository,
    unique.map((b) => b.digest),
  );
  options.onProgress?.({ type: 'done', reference, manifestDigest: fetched.digest, downloadedBytes });
  const pulled: PulledArtifact = {
    reference,
    manifestDigest: fetched.digest,
    manifest,
    config,
    layers: manifest.layers.map((l) => ({ ...l, path: store.blobPath(l.digest) })),
    downloadedBytes,
  };
  if (indexDigest) pulled.indexDigest = indexDigest;
  if (platform) pulled.platform = platform;
  return pulled;
}
