// Push: blobs (monolithic POST+PUT, or chunked PATCHes for large ones) and manifests. Used by
// the test fixtures and by `pack push`; a registry accepts a manifest only once its blobs exist.
import { Readable } from 'node:stream';
import { sha256Digest } from './digest';
import { RegistryError } from './errors';
import { MediaType } from './media-types';
import type { Descriptor } from './manifest';
import type { Platform } from './platform';
import { formatReference, manifestSelector, type ImageReference } from './reference';
import type { RegistryClient, RepositoryRef } from './registry-client';
import type { HttpResponse } from './transport';

export interface BlobUpload {
  digest: string;
  size: number;
  /** Called once per attempt (and per chunk when chunked). */
  open: (start?: number, end?: number) => Readable;
}

export interface PushBlobOptions {
  /** Upload in PATCH chunks of this many bytes instead of one PUT. */
  chunkSize?: number;
  signal?: AbortSignal;
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

/** Uploads a blob unless the registry has it; returns its descriptor fields. */
export async function pushBlob(
  client: RegistryClient,
  repo: RepositoryRef,
  blob: Buffer | BlobUpload,
  options: PushBlobOptions = {},
): Promise<{ digest: string; size: number; existed: boolean }> {
  const upload: BlobUpload = Buffer.isBuffer(blob)
    ? { digest: sha256Digest(blob), size: blob.length, open: () => bufferStream(blob) }
    : blob;
  const what = `pushing blob ${upload.digest} to ${repo.registry}/${repo.repository}`;
  if (await client.blobExists(repo, upload.digest, options.signal)) return { digest: upload.digest, size: upload.size, existed: true };
  const bytes = Buffer.isBuffer(blob) ? blob : undefined;

  const start = await client.request(repo, { method: 'POST', kind: 'blobs/uploads', actions: ['pull', 'push'], signal: options.signal, headers: { 'content-length': '0' } });
  let url = location(start, start.url);
  await expect(client, start, [202], what);

  const chunk = options.chunkSize;
  if (chunk && chunk > 0 && upload.size > chunk) {
    for (let offset = 0; offset < upload.size; offset += chunk) {
      const end = Math.min(offset + chunk, upload.size) - 1;
      const res = await client.request(repo, {
        method: 'PATCH',
        url,
        actions: ['pull', 'push'],
        signal: options.signal,
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${end}`, 'content-length': String(end - offset + 1) },
        body: bytes ? bytes.subarray(offset, end + 1) : () => upload.open(offset, end),
      });
      url = location(res, url);
      await expect(client, res, [202], what);
    }
    const done = new URL(url);
    done.searchParams.set('digest', upload.digest);
    const res = await client.request(repo, { method: 'PUT', url: done.toString(), actions: ['pull', 'push'], signal: options.signal, headers: { 'content-length': '0' } });
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
      body: bytes ?? (() => upload.open()),
    });
    await expect(client, res, [201, 204], what);
  }
  return { digest: upload.digest, size: upload.size, existed: false };
}

function bufferStream(buf: Buffer): Readable {
  return Readable.from([buf]);
}

/** PUTs a manifest under the reference's tag (or digest); returns the manifest's digest. */
export async function pushManifest(client: RegistryClient, ref: ImageReference, bytes: Buffer, mediaType: string, signal?: AbortSignal): Promise<string> {
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
  await expect(client, res, [201, 202, 204], `pushing manifest ${formatReference(ref)}`);
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
export async function pushImage(client: RegistryClient, ref: ImageReference, image: ImageToPush, options: PushBlobOptions = {}): Promise<Descriptor> {
  const docker = image.format === 'docker';
  const configDesc = { mediaType: docker ? MediaType.DockerConfig : MediaType.OciConfig, ...(await pushBlob(client, ref, image.config, options)) };
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
