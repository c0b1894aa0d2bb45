// Garbage collection: everything reachable from an image record stays; unreferenced blobs,
// erofs images, stale temp files and abandoned partial downloads go. Files younger than the
// grace period stay too, because a pull or prepare running in another process may have just
// written them and not yet written the record that references them.
import fs from 'node:fs';
import path from 'node:path';
import { digestHex } from './digest';
import { isAbandoned } from './ingest';
import { parseManifest } from './manifest';
import type { ContentStore, ImageRecord } from './store';

export interface GcOptions {
  /** Keep unreferenced files modified within this many milliseconds. Default: one hour. */
  gracePeriodMs?: number;
  /** Report what would be removed without removing it. */
  dryRun?: boolean;
  /**
   * Digests (blobs and manifests) of image records just removed by this process: freed at once,
   * without the grace period, unless another image still refers to them.
   */
  released?: Iterable<string>;
}

export interface GcResult {
  removedBlobs: Array<{ digest: string; size: number }>;
  removedErofs: Array<{ manifestDigest: string; size: number }>;
  /** Temp files and abandoned partial downloads. */
  removedTemp: number;
  freedBytes: number;
}

export const DEFAULT_GC_GRACE_MS = 60 * 60 * 1000;

const HEX = /^[a-f0-9]{64}$/;

/** Every blob an image record needs: manifest, config, index and layers. */
export function recordDigests(store: ContentStore, record: ImageRecord): Set<string> {
  const blobs = new Set([record.manifestDigest, record.configDigest]);
  if (record.indexDigest) blobs.add(record.indexDigest);
  try {
    const parsed = parseManifest(store.readBlob(record.manifestDigest));
    if (parsed.kind === 'image') {
      blobs.add(parsed.manifest.config.digest);
      for (const layer of parsed.manifest.layers) blobs.add(layer.digest);
    }
  } catch {
    // A missing or damaged manifest cannot name its layers; keeping the record's own digests
    // is all we can do, and a new pull repairs the rest.
  }
  return blobs;
}

function liveDigests(store: ContentStore): { blobs: Set<string>; manifests: Set<string> } {
  const blobs = new Set<string>();
  const manifests = new Set<string>();
  for (const record of store.listImages()) {
    manifests.add(record.manifestDigest);
    for (const digest of recordDigests(store, record)) blobs.add(digest);
  }
  return { blobs, manifests };
}

function entries(dir: string): fs.Dirent[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
}

export function collectGarbage(store: ContentStore, options: GcOptions = {}): GcResult {
  const grace = options.gracePeriodMs ?? DEFAULT_GC_GRACE_MS;
  const now = Date.now();
  const live = liveDigests(store);
  const released = new Set(options.released ?? []);
  const result: GcResult = { removedBlobs: [], removedErofs: [], removedTemp: 0, freedBytes: 0 };

  const remove = (file: string, digest?: string): number | undefined => {
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      return undefined;
    }
    if (!(digest && released.has(digest)) && now - st.mtimeMs < grace) return undefined;
    if (!options.dryRun) {
      try {
        fs.unlinkSync(file);
      } catch {
        return undefined;
      }
    }
    result.freedBytes += st.size;
    return st.size;
  };

  for (const entry of entries(store.blobsDir)) {
    if (!entry.isFile()) continue;
    const file = path.join(store.blobsDir, entry.name);
    if (HEX.test(entry.name)) {
      const digest = `sha256:${entry.name}`;
      if (live.blobs.has(digest)) continue;
      const size = remove(file, digest);
      if (size !== undefined) result.removedBlobs.push({ digest, size });
    } else if (entry.name.startsWith('.') && remove(file) !== undefined) {
      result.removedTemp++;
    }
  }

  const liveErofs = new Set([...live.manifests].map((d) => `${digestHex(d)}.erofs`));
  for (const entry of entries(store.erofsDir)) {
    if (!entry.isFile() || liveErofs.has(entry.name)) continue;
    const file = path.join(store.erofsDir, entry.name);
    const m = /^([a-f0-9]{64})\.erofs$/.exec(entry.name);
    const size = remove(file, m ? `sha256:${m[1]}` : undefined);
    if (size === undefined) continue;
    if (m) result.removedErofs.push({ manifestDigest: `sha256:${m[1]}`, size });
    else result.removedTemp++;
  }

  for (const entry of entries(store.ingestDir)) {
    if (!entry.isFile() || !isAbandoned(store.ingestDir, entry.name)) continue;
    // Abandoned partials have no writer left, so no grace is needed: only a resume would miss them.
    const file = path.join(store.ingestDir, entry.name);
    try {
      const size = fs.statSync(file).size;
      if (!options.dryRun) fs.unlinkSync(file);
      result.freedBytes += size;
      result.removedTemp++;
    } catch {
      // Claimed by a pull in the meantime.
    }
  }
  return result;
}
