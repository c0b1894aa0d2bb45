// Packs in OCI registries: a .smolmachine travels as an OCI artifact (artifactType
// application/vnd.smolvm.machine.v1) whose config is the pack manifest and whose layers are its
// sections, in order (then its runtime, format version 4), under an index keyed by the guest
// platform. Kernel, agent and runtime are the same blobs in every pack of one smolvm build: the
// registry is asked before each upload. A pulled pack is reassembled from verified blobs into a
// cache keyed by the artifact's digest; its runtime goes to the section cache, where runtimeDisk
// finds it.
import fs from 'node:fs';
import path from 'node:path';
import { smolvmDirs, UsageError } from '@smolvm/common';
import {
  BlobLocations,
  ContentStore,
  MACHINE_ARTIFACT_TYPE,
  RegistryClient,
  RegistryConfig,
  formatPlatform,
  parseOciPlatform,
  pullArtifact,
  pushArtifact,
  resolveArtifactReference,
  type ArtifactLayer,
  type ArtifactLimits,
  type ProgressListener,
  type PushEvent,
  type PushedArtifact,
} from '@smolvm/oci';
import { PackFormatError } from './format';
import { parseManifest, type PackManifest, type PackManifestBase } from './manifest';
import { PackFile } from './reader';
import { cacheRuntimeFrom, cachedRuntime, runtimeDisk } from './runtime';
import { isPackReference } from './source';
import { assemblePack } from './writer';

/** The config blob's media type: the pack manifest, as JSON. */
export const PACK_MANIFEST_MEDIA_TYPE = 'application/vnd.smolvm.machine.manifest.v1+json';

const TITLE = 'org.opencontainers.image.title';
const CREATED = 'org.opencontainers.image.created';

export interface PackRegistryOptions {
  env?: NodeJS.ProcessEnv;
  /** For tests and embedders: a client with its own settings (closed by its owner). */
  client?: RegistryClient;
  signal?: AbortSignal;
  warn?: (message: string) => void;
}

export interface PushedPack extends PushedArtifact {
  /** The pack's own digest (sha256 of its manifest). */
  packDigest: string;
  /** The guest platform it was pushed for (its key in the index). */
  platform: string;
}

async function withClient<T>(options: PackRegistryOptions, fn: (client: RegistryClient) => Promise<T>): Promise<T> {
  const client = options.client ?? new RegistryClient({ env: options.env, warn: options.warn });
  try {
    return await fn(client);
  } finally {
    if (!options.client) await client.close();
  }
}

export interface PushPackOptions extends PackRegistryOptions {
  onProgress?: (event: PushEvent) => void;
  chunkSize?: number;
  /** More files that may hold the pack's runtime (runtimeDisk), e.g. the caller's own stub executable. */
  runtimeCandidates?: string[];
}

/**
 * Verifies the pack (remembered per file identity), finds its runtime (runtimeDisk: checked before
 * anything is sent), then pushes it; sections stream from the file.
 */
export async function pushPack(file: string, reference: string, options: PushPackOptions = {}): Promise<PushedPack> {
  const cache = smolvmDirs(options.env).cache;
  const pack = PackFile.open(file);
  await pack.verify(cache);
  const runtime = await runtimeDisk(pack, cache, options.runtimeCandidates);
  const store = ContentStore.open(options.env);
  const manifest = pack.manifest;
  const layers: ArtifactLayer[] = pack.sections().map((s) => ({
    mediaType: s.media_type,
    digest: `sha256:${s.sha256}`,
    size: s.size,
    annotations: { [TITLE]: s.name },
    open: (start = 0, end = s.size - 1) =>
      fs.createReadStream(pack.path, { start: s.fileOffset + start, end: s.fileOffset + end }),
  }));
  if (runtime && manifest.runtime) {
    const { size, media_type: mediaType } = manifest.runtime;
    const at = runtime.range?.offset ?? 0;
    // The last layer: every pack of one build has the same, so a registry receives it once.
    layers.push({
      mediaType,
      digest: `sha256:${runtime.sha256}`,
      size,
      annotations: { [TITLE]: 'runtime' },
      open: (start = 0, end = size - 1) => fs.createReadStream(runtime.path, { start: at + start, end: at + end }),
    });
  }
  const pushed = await withClient(options, (client) =>
    pushArtifact(
      client,
      reference,
      {
        artifactType: MACHINE_ARTIFACT_TYPE,
        config: { mediaType: PACK_MANIFEST_MEDIA_TYPE, bytes: Buffer.from(JSON.stringify(manifest)) },
        layers,
        platform: parseOciPlatform(manifest.platform),
        annotations: { [CREATED]: manifest.created },
      },
      {
        locations: new BlobLocations(store),
        onProgress: options.onProgress,
        signal: options.signal,
        chunkSize: options.chunkSize,
      },
    ),
  );
  return { ...pushed, packDigest: pack.digest, platform: manifest.platform };
}

export interface PullPackOptions extends PackRegistryOptions {
  /** Where to write the pack; by default a cache file keyed by the artifact's manifest digest. */
  output?: string;
  /** Guest platform to pick from the index (default linux/<host arch>). */
  platform?: string;
  onProgress?: ProgressListener;
  limits?: Partial<ArtifactLimits>;
}

export interface PulledPack {
  path: string;
  reference: string;
  /** The OCI manifest's digest: what `REF@sha256:...` of this platform's pack names. */
  manifestDigest: string;
  packDigest: string;
  manifest: PackManifest;
  downloadedBytes: number;
  /** The pack was already in the cache: nothing was assembled. */
  cached: boolean;
  /** Format version 4: the runtime's file in the section cache (not part of the .smolmachine). */
  runtime?: string;
}

/** Where pulled packs are kept: `<cache>/pack/pulled/<manifest hex>.smolmachine`. */
export function pulledPackPath(manifestDigest: string, env?: NodeJS.ProcessEnv): string {
  return path.join(smolvmDirs(env).cache, 'pack', 'pulled', `${manifestDigest.slice('sha256:'.length)}.smolmachine`);
}

const FORGED = 'the artifact on the registry is damaged or forged; ask its publisher to push it again';

/**
 * The section table of the config must name exactly the layers the registry served, in order, and
 * its runtime the one layer after them (none without a runtime).
 */
function checkSections(
  manifest: PackManifest,
  layers: Array<{ digest: string; size: number; mediaType: string }>,
  reference: string,
): void {
  const n = manifest.sections.length;
  const same =
    layers.length >= n &&
    manifest.sections.every(
      (s, i) =>
        layers[i].digest === `sha256:${s.sha256}` && layers[i].size === s.size && layers[i].mediaType === s.media_type,
    );
  if (!same)
    throw new PackFormatError(reference, "its manifest's section table does not match the artifact's layers", FORGED);
  const rt = manifest.runtime;
  const last = layers[n];
  const runtimeSame = rt
    ? layers.length === n + 1 &&
      last.digest === `sha256:${rt.sha256}` &&
      last.size === rt.size &&
      last.mediaType === rt.media_type
    : layers.length === n;
  if (!runtimeSame)
    throw new PackFormatError(reference, "its manifest's runtime does not match the artifact's layers", FORGED);
}

/** Pulls a pack artifact (every blob verified) and assembles the .smolmachine; a cached one is reused. */
export async function pullPack(reference: string, options: PullPackOptions = {}): Promise<PulledPack> {
  return withClient(options, async (client) => {
    const store = ContentStore.open(options.env);
    const pulled = await pullArtifact(client, store, reference, {
      artifactType: MACHINE_ARTIFACT_TYPE,
      kindName: 'a smolvm pack',
      platform: options.platform,
      limits: options.limits,
      onProgress: options.onProgress,
      signal: options.signal,
      locations: new BlobLocations(store),
    });
    if (pulled.manifest.config.mediaType !== PACK_MANIFEST_MEDIA_TYPE) {
      throw new PackFormatError(
        pulled.reference,
        `its config is ${pulled.manifest.config.mediaType}, not a pack manifest`,
        'check the reference',
      );
    }
    // The offsets in it are those of the pushed file; the assembled one gets its own (checked below).
    const manifest = parseManifest(pulled.config, pulled.reference, Number.MAX_SAFE_INTEGER);
    checkSections(manifest, pulled.layers, pulled.reference);
    // The index entry chose this pack for a platform; the pack must say the same of itself.
    if (pulled.platform && formatPlatform(parseOciPlatform(manifest.platform)) !== formatPlatform(pulled.platform)) {
      throw new PackFormatError(
        pulled.reference,
        `it is listed for ${formatPlatform(pulled.platform)} but its manifest says ${manifest.platform}`,
        FORGED,
      );
    }
    // The runtime stays out of the .smolmachine (which is the pushed one byte for byte): into the
    // section cache, where runtimeDisk looks, from the verified blob (hashed again on its way in).
    let runtime: string | undefined;
    if (manifest.runtime) {
      const cacheDir = smolvmDirs(options.env).cache;
      runtime =
        cachedRuntime(manifest.runtime, cacheDir) ??
        (await cacheRuntimeFrom(pulled.layers[manifest.sections.length].path, manifest.runtime, cacheDir));
      if (!runtime) throw new PackFormatError(pulled.reference, 'its runtime layer does not match its sha256', FORGED);
    }

    const output = path.resolve(options.output ?? pulledPackPath(pulled.manifestDigest, options.env));
    if (!options.output) {
      const cached = reuse(output, manifest);
      if (cached)
        return {
          path: output,
          reference: pulled.reference,
          manifestDigest: pulled.manifestDigest,
          packDigest: cached.digest,
          manifest: cached.manifest,
          downloadedBytes: pulled.downloadedBytes,
          cached: true,
          ...(runtime ? { runtime } : {}),
        };
      fs.mkdirSync(path.dirname(output), { recursive: true, mode: 0o700 });
    }
    const { sections } = manifest;
    const base: PackManifestBase = withoutLayout(manifest);
    const byName = new Map(sections.map((s, i) => [s.name, pulled.layers[i].path]));
    await assemblePack({
      output,
      manifest: base,
      ...(manifest.runtime ? { runtime: { size: manifest.runtime.size, sha256: manifest.runtime.sha256 } } : {}),
      sections: sections.map((s) => ({
        name: s.name,
        open: () => fs.createReadStream(byName.get(s.name) as string),
        // Written as pushed: a compressed layer stays compressed (its description checked when inflated).
        ...(s.compression
          ? {
              compressed: {
                compression: s.compression,
                uncompressed_size: s.uncompressed_size as number,
                uncompressed_sha256: s.uncompressed_sha256 as string,
              },
            }
          : {}),
      })),
    });
    const pack = PackFile.open(output);
    checkSections(pack.manifest, pulled.layers, output);
    return {
      path: output,
      reference: pulled.reference,
      manifestDigest: pulled.manifestDigest,
      packDigest: pack.digest,
      manifest: pack.manifest,
      downloadedBytes: pulled.downloadedBytes,
      cached: false,
      ...(runtime ? { runtime } : {}),
    };
  });
}

/** The manifest as a writer takes it: without format, version, section table and runtime (an option). */
function withoutLayout(manifest: PackManifest): PackManifestBase {
  const base: Partial<PackManifest> = { ...manifest };
  delete base.format;
  delete base.version;
  delete base.sections;
  delete base.runtime;
  return base as PackManifestBase;
}

/** A complete cached pack with the same sections and runtime; anything else is assembled again. */
function reuse(file: string, manifest: PackManifest): PackFile | undefined {
  try {
    const pack = PackFile.open(file);
    const layout = (m: PackManifest) => JSON.stringify([m.sections, m.runtime ?? null]);
    return layout(pack.manifest) === layout(manifest) ? pack : undefined;
  } catch {
    return undefined;
  }
}

/** Resolves `--from`/`--sidecar` values: files as they are, references pulled into the cache. */
export async function resolvePackSource(
  value: string,
  options: PullPackOptions = {},
): Promise<{ path: string; pulled?: PulledPack }> {
  if (!isPackReference(value)) return { path: value };
  // Checked before any network: a typo that is neither a file nor a reference gets one clear line.
  try {
    resolveArtifactReference(
      value,
      options.client?.config ?? RegistryConfig.load({ env: options.env, warn: options.warn }),
    );
  } catch (err) {
    if (err instanceof UsageError) {
      throw new UsageError(`${value} is neither a file nor an artifact reference`, {
        remedy: 'give the path of a .smolmachine, or a reference such as registry.example.com/team/app:v1',
      });
    }
    throw err;
  }
  const pulled = await pullPack(value, options);
  return { path: pulled.path, pulled };
}
