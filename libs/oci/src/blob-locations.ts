// Where blobs were last seen on a registry (pushed to or pulled from a repository), so a push to
// another repository of that registry can ask for a cross-repository mount instead of sending
// the bytes again. A hint only: a wrong or lost entry costs one upload, never correctness.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { writeJsonAtomic } from '@smolvm/common';
import { isDigest } from './digest';
import type { ContentStore } from './store';

/** Per registry; the oldest entries go first (a kernel blob is re-seen on every pack push). */
export const MAX_BLOB_LOCATIONS = 4096;

export class BlobLocations {
  constructor(private readonly store: ContentStore) {}

  private file(registry: string): string {
    const key = crypto.createHash('sha256').update(registry).digest('hex').slice(0, 32);
    return path.join(this.store.root, 'locations', `${key}.json`);
  }

  private read(registry: string): Map<string, string> {
    try {
      const doc = JSON.parse(fs.readFileSync(this.file(registry), 'utf8')) as { registry?: unknown; blobs?: unknown };
      if (doc.registry !== registry || typeof doc.blobs !== 'object' || doc.blobs === null) return new Map();
      const entries = Object.entries(doc.blobs as Record<string, unknown>).filter(
        (e): e is [string, string] => isDigest(e[0]) && typeof e[1] === 'string' && e[1] !== '',
      );
      return new Map(entries);
    } catch {
      return new Map();
    }
  }

  /** The repository of `registry` that last held `digest`, if we know one. */
  find(registry: string, digest: string): string | undefined {
    return this.read(registry).get(digest);
  }

  /** Records that `repository` holds these blobs. Concurrent writers may drop each other's hints. */
  remember(registry: string, repository: string, digests: string[]): void {
    if (digests.length === 0) return;
    const map = this.read(registry);
    for (const digest of digests) {
      map.delete(digest);
      map.set(digest, repository);
    }
    const kept = [...map.entries()].slice(-MAX_BLOB_LOCATIONS);
    this.store.ensureDir(path.dirname(this.file(registry)));
    writeJsonAtomic(this.file(registry), { registry, blobs: Object.fromEntries(kept) });
  }
}
