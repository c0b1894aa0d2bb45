// Push: blobs (monolithic POST+PUT, or chunked PATCHes for large ones; a HEAD first and a
// cross-repository mount when the blob is known elsewhere) and manifests. Used by the test
// fixtures and by artifact pushes; a registry accepts a manifest only once its blobs exist.
import { Readable, Transform } from 'node:stream';
import { sha256Digest } from './digest';
import { apiUrl } from './endpoint';
import { DigestMismatchError, RegistryAuthError, RegistryError } from './errors';
import { MediaType } from './media-types';
import type { Descriptor } from './manifest';
import type { Platform } from './platform';
import { formatReference, manifestSelector, type ImageReference } from './reference';
import type { RegistryClient, RepositoryRef } from './registry-client';
import type { HttpResponse } from './transport';

export interface BlobUpload {
  digest: string;
  size: number;
  /** Called once per attempt (and per chunk when chunked); `end` is inclusive. */
  open: (start?: number, end?: number) => Readable;
}

export interface PushBlobOptions {
  /** Upload in PATCH chunks of this many bytes instead of one PUT. */
  chunkSize?: number;
  signal?: AbortSignal;
  /**
   * A repository of the same registry that may hold the blob already: asked for a
   * cross-repository mount first, so shared blobs (a kernel in every pack) are never re-sent.
   */
  mountFrom?: string;
  /** Bytes of this blob sent so far. */
  onProgress?: (bytes: number) => void;
}

/** What a blob push did: found it, had the registry link it from another repository, or sent it. */
export type BlobPushOutcome = 'existed' | 'mounted' | 'uploaded';

export interface PushedBlob {
  digest: string;
  size: number;
  outcome: BlobPushOutcome;
}

function location(res: HttpResponse, base: string): string {
  const value = res.headers.location;
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) throw new RegistryError(`upload to ${new URL(base).host}: no Location header in the answer`);
  return new URL(text, base).toString();
}

async function expect(client: RegistryClient, res: HttpResponse, statuses: number[], what: string): Promise<void> {
  if (statuses.includes(res.status)) {
    await res.body.dump().catch(() => {});
    return;
  }
  throw await client.unexpected(res, what);
}

/** A registry that names the blob it stored must name ours (distribution checks the digest we give). */
function checkStoredDigest(res: HttpResponse, digest: string, what: string): void {
  const value = res.headers['docker-content-digest'];
  const stored = Array.isArray(value) ? value[0] : value;
  if (stored !== undefined && stored !== digest) throw new DigestMismatchError(digest, stored, what);
}

/** Counts bytes as the HTTP client reads them, for progress (a listener on 'data' would drop bytes). */
function counted(stream: Readable, onBytes: (n: number) => void): Readable {
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      onBytes(chunk.length);
      callback(null, chunk);
    },
  });
  stream.on('error', (err) => counter.destroy(err));
  return stream.pipe(counter);
}

/**
 * Starts an upload session, or mounts the blob from `mountFrom` when the registry can (201).
 * A mount the registry declines answers 202 with a session, which the upload then uses.
 */
async function startUpload(
  client: RegistryClient,
  repo: RepositoryRef,
  digest: string,
  options: PushBlobOptions,
  what: string,
): Promise<{ mounted: true } | { mounted: false; url: string }> {
  const post = async (mount?: string): Promise<HttpResponse> => {
    const base = apiUrl(client.endpoint(repo.registry), repo.repository, 'blobs/uploads');
    const url = new URL(base);
    if (mount) {
      url.searchParams.set('mount', digest);
      url.searchParams.set('from', mount);
    }
    return client.request(repo, {
      method: 'POST',
      url: url.toString(),
      actions: ['pull', 'push'],
      alsoPull: mount ? [mount] : undefined,
      signal: options.signal,
      headers: { 'content-length': '0' },
    });
  };
  let res: HttpResponse | undefined;
  if (options.mountFrom && options.mountFrom !== repo.repository) {
    try {
      res = await post(options.mountFrom);
    } catch (err) {
      // No pull right on the source repository (or it is gone): upload as if we had no hint.
      if (!(err instanceof RegistryAuthError)) throw err;
    }
    if (res?.status === 201) {
      checkStoredDigest(res, digest, what);
      await res.body.dump().catch(() => {});
      return { mounted: true };
    }
  }
  res ??= await post();
  const url = location(res, res.url);
  await expect(client, res, [202], what);
  return { mounted: false, url };
}

/** Uploads a blob unless the registry has it (HEAD first, then a mount when a source is known). */
export async function pushBlob(
  client: RegistryClient,
  repo: RepositoryRef,
  blob: Buffer | BlobUpload,
  options: PushBlobOptions = {},
): Promise<PushedBlob> {
  const upload: BlobUpload = Buffer.isBuffer(blob)
    ? { digest: sha256Digest(blob), size: blob.length, open: () => bufferStream(blob) }
    : blob;
  const what = `pushing blob ${upload.digest} to ${repo.registry}/${repo.repository}`;
  const done = (outcome: BlobPushOutcome): PushedBlob => {
    options.onProgress?.(upload.size);
    return { digest: upload.digest, size: upload.size, outcome };
  };
  if (await client.blobExists(repo, upload.digest, options.signal)) return done('existed');
  const started = await startUpload(client, repo, upload.digest, options, what);
  if (started.mounted) return done('mounted');
  let url = started.url;
  const bytes = Buffer.isBuffer(blob) ? blob : undefined;
  // One counter per attempt: a retried chunk reports from its own start again.
  const open = (start?: number, end?: number) => (): Readable => {
    let sent = start ?? 0;
    return counted(upload.open(start, end), (n) => options.onProgress?.((sent += n)));
  };

  const chunk = options.chunkSize;
  if (chunk && chunk > 0 && upload.size > chunk) {
    for (let offset = 0; offset < upload.size; offset += chunk) {
      const end = Math.min(offset + chunk, upload.size) - 1;
      const res = await client.request(repo, {
        method: 'PATCH',
        url,
        actions: ['pull', 'push'],
        signal: options.signal,
        headers: {
          'content-type': 'application/octet-stream',
          'content-range': `${offset}-${end}`,
          'content-length': String(end - offset + 1),
        },
        body: bytes ? bytes.subarray(offset, end + 1) : open(offset, end),
      });
      url = location(res, url);
      await expect(client, res, [202], what);
    }
    const finish = new URL(url);
    finish.searchParams.set('digest', upload.digest);
    const res = await client.request(repo, {
      method: 'PUT',
      url: finish.toString(),
      actions: ['pull', 'push'],
      signal: options.signal,
      headers: { 'content-length': '0' },
    });
    checkStoredDigest(res, upload.digest, what);
    await expect(client, res, [201, 204], what);
  } else {
    const put = new URL(url);
    put.searchParams.set('digest', upload.digest);
    const res = await client.request(repo, {
      method: 'PUT',
      url: put.toString(),
      actions: ['pull', 'push'],
      signal: options.signal,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(upload.size) },
      body: bytes ?? open(),
    });
    checkStoredDigest(res, upload.digest, what);
    await expect(client, res, [201, 204], what);
  }
  return done('uploaded');
}

function bufferStream(buf: Buffer): Readable {
  return Readable.from([buf]);
}

/** PUTs a manifest under the reference's tag (or digest); returns the manifest's digest. */
export async function pushManifest(
  client: RegistryClient,
  ref: ImageReference,
  bytes: Buffer,
  mediaType: string,
  signal?: AbortSignal,
): Promise<string> {
  const digest = sha256Digest(bytes);
  const res = await client.request(ref, {
    method: 'PUT',
    kind: 'manifests',
    reference: manifestSelector(ref),
    actions: ['pull', 'push'],
    signal,
    headers: { 'content-type': mediaType, 'content-length': String(bytes.length) },
    body: bytes,
  });
  const what = `pushing manifest ${formatReference(ref)}`;
  checkStoredDigest(res, digest, what);
  await expect(client, res, [201, 202, 204], what);
  return digest;
}

export interface ImageToPush {
  config: Buffer;
  layers: Array<{ bytes: Buffer; mediaType: string }>;
  /** OCI by default; Docker schema 2 media types when 'docker'. */
  format?: 'oci' | 'docker';
  annotations?: Record<string, string>;
}

/** Pushes blobs then the manifest; returns the manifest's descriptor (for building an index). */
export async function pushImage(
  client: RegistryClient,
  ref: ImageReference,
  image: ImageToPush,
  options: PushBlobOptions = {},
): Promise<Descriptor> {
  const docker = image.format === 'docker';
  const configDesc = {
    mediaType: docker ? MediaType.DockerConfig : MediaType.OciConfig,
    ...(await pushBlob(client, ref, image.config, options)),
  };
  const layers: Descriptor[] = [];
  for (const layer of image.layers) {
    const { digest, size } = await pushBlob(client, ref, layer.bytes, options);
    layers.push({ mediaType: layer.mediaType, digest, size });
  }
  const mediaType = docker ? MediaType.DockerManifest : MediaType.OciManifest;
  const manifest = {
    schemaVersion: 2,
    mediaType,
    config: { mediaType: configDesc.mediaType, digest: configDesc.digest, size: configDesc.size },
    layers,
    ...(image.annotations ? { annotations: image.annotations } : {}),
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const digest = await pushManifest(client, ref, bytes, mediaType, options.signal);
  return { mediaType, digest, size: bytes.length };
}

/** Pushes an index over already pushed manifests (each with its platform). */
export async function pushIndex(
  client: RegistryClient,
  ref: ImageReference,
  manifests: Array<Descriptor & { platform: Platform }>,
  format: 'oci' | 'docker' = 'oci',
  signal?: AbortSignal,
): Promise<Descriptor> {
  const mediaType = format === 'docker' ? MediaType.DockerManifestList : MediaType.OciIndex;
  const index = {
    schemaVersion: 2,
    mediaType,
    manifests: manifests.map((m) => ({ mediaType: m.mediaType, digest: m.digest, size: m.size, platform: m.platform })),
  };
  const bytes = Buffer.from(JSON.stringify(index));
  const digest = await pushManifest(client, ref, bytes, mediaType, signal);
  return { mediaType, digest, size: bytes.length };
}
