// The facade the CLI and the HTTP API use: one object over the registry client and the store.
import { NotFoundError, smolvmDirs } from '@smolvm/common';
import path from 'node:path';
import { collectGarbage, recordDigests, type GcOptions, type GcResult } from './gc';
import { parseImageConfig, type ImageConfig } from './image-config';
import { parseManifest, type ImageManifest } from './manifest';
import { formatPlatform, parsePlatform, type Platform } from './platform';
import { prepareImage, type PreparedImage, type PrepareOptions } from './prepare';
import { pullImage, type PulledImage, type PullOptions } from './pull';
import { formatReference, toReference, type ImageReference } from './reference';
import { RegistryClient, type RegistryClientOptions } from './registry-client';
import { ContentStore, type ImageRecord } from './store';
import { isDigest } from './digest';

export interface ImageServiceOptions extends RegistryClientOptions {
  /** Store root; defaults to <cache dir>/oci (SMOLVM_HOME or XDG, from `env`). */
  storeDir?: string;
  /** Non-fatal notices (an unreadable ~/.docker/config.json); the CLI prints them. */
  warn?: (message: string) => void;
}

export interface ImageDetails {
  record: ImageRecord;
  manifest: ImageManifest;
  config: ImageConfig;
}

function platformFilter(platform: Platform | string | undefined): Platform | undefined {
  return typeof platform === 'string' ? parsePlatform(platform) : platform;
}

export class ImageService {
  readonly store: ContentStore;
  readonly client: RegistryClient;

  constructor(options: ImageServiceOptions = {}) {
    const env = options.env ?? process.env;
    this.store = new ContentStore(options.storeDir ?? path.join(smolvmDirs(env).cache, 'oci'));
    this.client = new RegistryClient(options);
  }

  pull(reference: string | ImageReference, options: PullOptions = {}): Promise<PulledImage> {
    return pullImage(this.client, this.store, reference, options);
  }

  prepare(reference: string | ImageReference, options: PrepareOptions = {}): Promise<PreparedImage> {
    return prepareImage(this.client, this.store, reference, options);
  }

  list(): ImageRecord[] {
    return this.store.listImages();
  }

  /**
   * Local images a user's argument names: a reference ("alpine", "alpine@sha256:..."), or a
   * manifest digest ("sha256:...") as `image ls` shows it.
   */
  find(reference: string | ImageReference, platform?: Platform | string): ImageRecord[] {
    const wanted = platformFilter(platform);
    if (typeof reference === 'string' && isDigest(reference)) {
      return this.store
        .listImages()
        .filter(
          (r) => r.manifestDigest === reference && (!wanted || formatPlatform(r.platform) === formatPlatform(wanted)),
        );
    }
    const ref = toReference(reference);
    return this.store.findImages(formatReference(ref), ref.digest, wanted);
  }

  inspect(reference: string | ImageReference, platform?: Platform | string): ImageDetails {
    const [record] = this.find(reference, platform);
    if (!record) throw this.notFound(reference);
    const parsed = parseManifest(this.store.readBlob(record.manifestDigest));
    if (parsed.kind !== 'image') throw this.notFound(reference);
    return {
      record,
      manifest: parsed.manifest,
      config: parseImageConfig(this.store.readBlob(parsed.manifest.config.digest)),
    };
  }

  /** Removes the records (not the blobs: `gc` frees space). Throws NotFoundError when nothing matches. */
  remove(reference: string | ImageReference, platform?: Platform | string): ImageRecord[] {
    const records = this.find(reference, platform);
    if (records.length === 0) throw this.notFound(reference);
    return records.filter((r) => this.store.removeImageRecord(r));
  }

  /** Removes the records `reference` names and frees the data no other image shares. */
  removeAndCollect(
    reference: string | ImageReference,
    platform?: Platform | string,
  ): { removed: ImageRecord[]; gc: GcResult } {
    const records = this.find(reference, platform);
    if (records.length === 0) throw this.notFound(reference);
    // Read what the records need before they go: afterwards their manifests may be unreadable.
    const released = records.flatMap((r) => [...recordDigests(this.store, r)]);
    const removed = records.filter((r) => this.store.removeImageRecord(r));
    return { removed, gc: collectGarbage(this.store, { released }) };
  }

  gc(options: GcOptions = {}): GcResult {
    return collectGarbage(this.store, options);
  }

  close(): Promise<void> {
    return this.client.close();
  }

  private notFound(reference: string | ImageReference): NotFoundError {
    const shown = typeof reference === 'string' ? reference : formatReference(reference);
    return new NotFoundError(`image ${shown} is not in the local store`, {
      remedy: "list local images with 'smolvm image ls'",
    });
  }
}

/** One-shot prepare with a private service (opens, prepares, closes). */
export async function prepare(
  reference: string | ImageReference,
  options: PrepareOptions & ImageServiceOptions = {},
): Promise<PreparedImage> {
  const service = new ImageService(options);
  try {
    return await service.prepare(reference, options);
  } finally {
    await service.close();
  }
}
