// Import: an image made on this host from one root filesystem tar (the Debian base tools/base/build
// makes for bare VMs), stored like a pulled image: the layer, a config and a manifest as blobs and
// an image record, so listing, preparing (erofs), pinning and gc treat it like any other image.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { SmolvmError, hashingTap, tempPathFor } from '@smolvm/common';
import type { ImageManifest } from './manifest';
import { MediaType, type LayerCompression } from './media-types';
import { hostPlatform } from './platform';
import { formatReference, toReference } from './reference';
import type { ContentStore, ImageRecord } from './store';

export interface ImportLayerOptions {
  /** The local name, e.g. `smolvm.internal/base:debian-bookworm-0123abcd`. */
  reference: string;
  /** A tar of the whole root filesystem, compressed as `compression` says. */
  layerPath: string;
  compression: LayerCompression;
  /** The image's creation time: a fixed one makes every import of one tar the same image (digest). */
  created: string;
  /** What a VM of the image runs and with which environment (image config fields). */
  env?: string[];
  cmd?: string[];
  labels?: Record<string, string>;
}

const LAYER_MEDIA_TYPE: Record<LayerCompression, string> = {
  none: MediaType.OciLayer,
  gzip: MediaType.OciLayerGzip,
  zstd: MediaType.OciLayerZstd,
};

/** sha256 of a stream's bytes, as an OCI digest. */
async function digestOf(stream: NodeJS.ReadableStream): Promise<string> {
  const hash = crypto.createHash('sha256');
  await pipeline(stream, hash);
  return `sha256:${hash.digest('hex')}`;
}

/** The uncompressed tar's digest (the config's diff_id); zstd through the zstd program (Node 20 has no zstd). */
async function diffIdOf(file: string, compression: LayerCompression, blobDigest: string): Promise<string> {
  if (compression === 'none') return blobDigest;
  if (compression === 'gzip') return digestOf(fs.createReadStream(file).pipe(zlib.createGunzip()));
  const child = spawn('zstd', ['-dcq', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  const [digest, code] = await Promise.all([digestOf(child.stdout), exited]);
  if (code !== 0)
    throw new SmolvmError(`cannot decompress ${file}: ${stderr.trim() || `zstd exited with ${String(code)}`}`, {
      remedy: 'build it again (tools/base/build --force)',
    });
  return digest;
}

/** Copies `file` into the store as a blob, hashing it on the way; returns its digest and size. */
async function putBlobFile(store: ContentStore, file: string): Promise<{ digest: string; size: number }> {
  store.ensureDir(store.blobsDir);
  const tmp = tempPathFor(store.blobPath(`sha256:${'0'.repeat(64)}`));
  const hashed = hashingTap();
  try {
    const out = fs.createWriteStream(tmp, { flags: 'wx', mode: 0o600 });
    await pipeline(fs.createReadStream(file), hashed.tap, out);
    const fd = fs.openSync(tmp, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    const digest = `sha256:${hashed.digest()}`;
    store.commitBlobFile(tmp, digest);
    return { digest, size: hashed.size() };
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * Stores the tar as a one-layer image under `reference` (this host's platform) and returns its
 * record. The record is written last: a failed import leaves only blobs gc can collect.
 */
export async function importLayerImage(store: ContentStore, options: ImportLayerOptions): Promise<ImageRecord> {
  const ref = toReference(options.reference);
  if (!ref.tag || ref.digest)
    throw new SmolvmError(
      `cannot import under ${options.reference}: a local image needs a name with a tag and no digest`,
      { remedy: 'name it NAME:TAG' },
    );
  const layer = await putBlobFile(store, options.layerPath);
  const diffId = await diffIdOf(store.blobPath(layer.digest), options.compression, layer.digest);
  const platform = hostPlatform();
  const config = {
    architecture: platform.architecture,
    os: platform.os,
    created: options.created,
    config: {
      ...(options.env ? { Env: options.env } : {}),
      ...(options.cmd ? { Cmd: options.cmd } : {}),
      ...(options.labels ? { Labels: options.labels } : {}),
    },
    rootfs: { type: 'layers', diff_ids: [diffId] },
  };
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDigest = store.putBlob(configBytes);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: configDigest, size: configBytes.length },
    layers: [{ mediaType: LAYER_MEDIA_TYPE[options.compression], digest: layer.digest, size: layer.size }],
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const manifestDigest = store.putBlob(manifestBytes);
  const record: ImageRecord = {
    reference: formatReference(ref),
    registry: ref.registry,
    repository: ref.repository,
    tag: ref.tag,
    platform,
    manifestDigest,
    configDigest,
    size: manifestBytes.length + configBytes.length + layer.size,
    pulledAt: new Date().toISOString(),
  };
  store.putImage(record);
  return record;
}
