// Prepare: make an image runnable — pulled into the store (unless present) and converted once
// into an erofs image cached by manifest digest, which every VM of that image shares read-only.
import fs from 'node:fs';
import { assertTrustedPath, fsyncDir, NotFoundError, SmolvmError, tempPathFor } from '@smolvm/common';
import { buildErofsFromLayers, type LayerSource } from '@smolvm/erofs';
import { parseImageConfig, type ImageConfig } from './image-config';
import { layerCompression } from './media-types';
import { parseManifest, type ImageManifest } from './manifest';
import { formatPlatform } from './platform';
import { pullImage, wantedPlatform, type PullOptions } from './pull';
import { formatReference, toReference, type ImageReference } from './reference';
import type { RegistryClient } from './registry-client';
import type { ContentStore, ImageRecord } from './store';

export type ErofsLayerSource = LayerSource;

/** The shape of @smolvm/erofs's buildErofsFromLayers: ordered layers in, one erofs image out. */
export type BuildErofs = (layers: ErofsLayerSource[], outPath: string) => Promise<unknown>;

export interface PrepareOptions extends PullOptions {
  /** missing (default): pull unless present; always: re-resolve tags; never: local store only. */
  pull?: 'missing' | 'always' | 'never';
  /** Replaces the erofs writer (tests, benchmarks). */
  buildErofs?: BuildErofs;
}

export interface PreparedImage {
  reference: string;
  manifestDigest: string;
  erofsPath: string;
  config: ImageConfig;
  record: ImageRecord;
  /** True when this call pulled from a registry. */
  pulled: boolean;
}

/** In-process builds by manifest digest: concurrent prepares of one image share one build. */
const building = new Map<string, Promise<void>>();

function completeLocally(
  store: ContentStore,
  record: ImageRecord,
): { manifest: ImageManifest; config: ImageConfig } | undefined {
  if (!store.hasBlob(record.manifestDigest)) return undefined;
  const parsed = parseManifest(store.readBlob(record.manifestDigest));
  if (parsed.kind !== 'image') return undefined;
  const manifest = parsed.manifest;
  if (!store.hasBlob(manifest.config.digest, manifest.config.size)) return undefined;
  if (!manifest.layers.every((l) => store.hasBlob(l.digest, l.size))) return undefined;
  return { manifest, config: parseImageConfig(store.readBlob(manifest.config.digest)) };
}

export async function prepareImage(
  client: RegistryClient,
  store: ContentStore,
  input: string | ImageReference,
  options: PrepareOptions = {},
): Promise<PreparedImage> {
  const ref = toReference(input);
  const reference = formatReference(ref);
  const wanted = wantedPlatform(options.platform);
  const mode = options.pull ?? 'missing';

  let record: ImageRecord | undefined;
  let local: { manifest: ImageManifest; config: ImageConfig } | undefined;
  // A digest names immutable content: if we have it, no registry can tell us anything new.
  if (mode !== 'always' || ref.digest !== undefined) {
    for (const candidate of store.findImages(reference, ref.digest, wanted.platform)) {
      local = completeLocally(store, candidate);
      if (local) {
        record = candidate;
        break;
      }
    }
  }
  let pulled = false;
  if (!record || !local) {
    if (mode === 'never') {
      throw new NotFoundError(`image ${reference} (${formatPlatform(wanted.platform)}) is not in the local store`, {
        remedy: `pull it first with 'smolvm image pull ${reference}'`,
      });
    }
    const result = await pullImage(client, store, ref, options);
    record = result.record;
    local = { manifest: result.manifest, config: result.config };
    pulled = true;
  }

  const erofsPath = store.erofsPath(record.manifestDigest);
  // A prepared image is what the VM boots for this digest: UntrustedPathError if another user could have put it there.
  if (fs.existsSync(erofsPath)) assertTrustedPath(erofsPath, store.root);
  else {
    let job = building.get(record.manifestDigest);
    if (!job) {
      job = buildErofsImage(store, local.manifest, erofsPath, reference, options.buildErofs);
      building.set(record.manifestDigest, job);
      job.then(
        () => building.delete(record.manifestDigest),
        () => building.delete(record.manifestDigest),
      );
    }
    await job;
  }
  return { reference, manifestDigest: record.manifestDigest, erofsPath, config: local.config, record, pulled };
}

/**
 * Builds into a private temp file and renames it into place: another process building the same
 * image at the same time renames identical content, and a crash leaves only a temp file for gc.
 */
async function buildErofsImage(
  store: ContentStore,
  manifest: ImageManifest,
  erofsPath: string,
  reference: string,
  builder?: BuildErofs,
): Promise<void> {
  const layers: ErofsLayerSource[] = manifest.layers.map((layer) => {
    if (layerCompression(layer.mediaType) === undefined) {
      throw new SmolvmError(
        `image ${reference} has a layer of media type ${layer.mediaType}, which is not a filesystem layer`,
        {
          remedy: 'use a container image (OCI or Docker layers)',
        },
      );
    }
    return { mediaType: layer.mediaType, open: () => fs.createReadStream(store.blobPath(layer.digest)) };
  });
  const build = builder ?? buildErofsFromLayers;
  store.ensureDir(store.erofsDir);
  const tmp = tempPathFor(erofsPath);
  try {
    await build(layers, tmp);
    // The writer's own durability is not ours to assume: the file must survive a power cut
    // before its name says it is complete.
    const fd = fs.openSync(tmp, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.chmodSync(tmp, 0o400);
    fs.renameSync(tmp, erofsPath);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(store.erofsDir);
}
