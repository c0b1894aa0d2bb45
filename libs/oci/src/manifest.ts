// Manifests and indexes (OCI and Docker schema 2), parsed from untrusted registry bytes into
// checked shapes: a malformed descriptor fails here, not deep inside a download.
import { SmolvmError, isJsonObject } from '@smolvm/common';
import { assertDigest } from './digest';
import { MediaType, isImageManifestMediaType, isIndexMediaType } from './media-types';
import type { Platform } from './platform';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  /** OCI 1.1: the artifact type of the manifest an index entry points to. */
  artifactType?: string;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType: string;
  /** OCI 1.1: what kind of artifact this is; absent for container images. */
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export type ParsedManifest = { kind: 'image'; manifest: ImageManifest } | { kind: 'index'; index: ImageIndex };

/** Registries serve manifests far smaller than this; the cap bounds memory on a hostile answer. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

function invalid(what: string, detail: string): SmolvmError {
  return new SmolvmError(`invalid ${what}: ${detail}`, {
    remedy: 'the registry served a malformed manifest; check the image reference or contact the image publisher',
  });
}

function stringMap(value: unknown, what: string): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isJsonObject(value)) throw invalid(what, 'annotations must be an object');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw invalid(what, `annotation '${k}' must be a string`);
    out[k] = v;
  }
  return out;
}

function optionalString(value: unknown, what: string, field: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw invalid(what, `${field} must be a string`);
  return value;
}

function parsePlatformField(value: unknown, what: string): Platform | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isJsonObject(value) || typeof value.os !== 'string' || typeof value.architecture !== 'string') {
    throw invalid(what, 'platform needs string os and architecture');
  }
  const platform: Platform = { os: value.os, architecture: value.architecture };
  if (typeof value.variant === 'string' && value.variant !== '') platform.variant = value.variant;
  return platform;
}

export function parseDescriptor(value: unknown, what: string): Descriptor {
  if (!isJsonObject(value)) throw invalid(what, 'descriptor must be an object');
  if (typeof value.mediaType !== 'string' || value.mediaType === '') throw invalid(what, 'descriptor has no mediaType');
  let digest: string;
  try {
    digest = assertDigest(value.digest, `${what} digest`);
  } catch (err) {
    throw invalid(what, (err as Error).message);
  }
  const size = value.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
    throw invalid(what, `descriptor ${digest} has a bad size`);
  const descriptor: Descriptor = { mediaType: value.mediaType, digest, size };
  if (Array.isArray(value.urls)) descriptor.urls = value.urls.filter((u): u is string => typeof u === 'string');
  const annotations = stringMap(value.annotations, what);
  if (annotations) descriptor.annotations = annotations;
  const platform = parsePlatformField(value.platform, what);
  if (platform) descriptor.platform = platform;
  const artifactType = optionalString(value.artifactType, what, 'artifactType');
  if (artifactType !== undefined) descriptor.artifactType = artifactType;
  return descriptor;
}

/**
 * Decides what a manifest is. The body's own mediaType wins; the Content-Type header comes next;
 * OCI allows both to be absent, so the shape (manifests vs layers) decides last.
 */
export function parseManifest(bytes: Uint8Array, contentType?: string): ParsedManifest {
  if (bytes.length > MAX_MANIFEST_BYTES) throw invalid('manifest', `larger than ${MAX_MANIFEST_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw invalid('manifest', 'not JSON');
  }
  if (!isJsonObject(doc)) throw invalid('manifest', 'not a JSON object');
  const header = contentType?.split(';')[0].trim();
  const declared = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  let mediaType = declared ?? header;
  if (!isIndexMediaType(mediaType) && !isImageManifestMediaType(mediaType)) {
    if (
      doc.schemaVersion === 1 ||
      mediaType === MediaType.DockerSchema1 ||
      mediaType === MediaType.DockerSchema1Signed
    ) {
      throw new SmolvmError('image uses Docker manifest schema 1, which smolvm does not support', {
        remedy: 'rebuild or re-push the image with a current tool (schema 2 / OCI)',
      });
    }
    if (Array.isArray(doc.manifests)) mediaType = MediaType.OciIndex;
    else if (Array.isArray(doc.layers)) mediaType = MediaType.OciManifest;
    else throw invalid('manifest', `unsupported media type '${mediaType ?? 'none'}'`);
  }
  if (doc.schemaVersion !== 2) throw invalid('manifest', 'schemaVersion must be 2');
  const annotations = stringMap(doc.annotations, 'manifest');

  if (isIndexMediaType(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw invalid('index', 'manifests must be an array');
    const index: ImageIndex = {
      schemaVersion: 2,
      mediaType: mediaType as string,
      manifests: doc.manifests.map((m, i) => parseDescriptor(m, `index entry ${i}`)),
    };
    if (annotations) index.annotations = annotations;
    return { kind: 'index', index };
  }
  if (!Array.isArray(doc.layers)) throw invalid('manifest', 'layers must be an array');
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: mediaType as string,
    config: parseDescriptor(doc.config, 'manifest config'),
    layers: doc.layers.map((l, i) => parseDescriptor(l, `manifest layer ${i}`)),
  };
  const artifactType = optionalString(doc.artifactType, 'manifest', 'artifactType');
  if (artifactType !== undefined) manifest.artifactType = artifactType;
  if (annotations) manifest.annotations = annotations;
  return { kind: 'image', manifest };
}
