// The content store under <cache>/oci: verified blobs by digest, one record file per local image,
// erofs images by manifest digest. Every file appears by rename of a complete, fsynced temp file,
// so readers (and other processes) see whole files or none.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { commitTempFile, ensurePrivateDir, smolvmDirs, tempPathFor, writeJsonAtomic } from '@smolvm/common';
import { digestHex, sha256Digest } from './digest';
import { DigestMismatchError } from './errors';
import { formatPlatform, normalizePlatform, platformMatches, type Platform } from './platform';

export interface ImageRecord {
  /** Canonical reference as pulled: "docker.io/library/alpine:latest" or "...@sha256:...". */
  reference: string;
  registry: string;
  repository: string;
  tag?: string;
  /** The digest the reference named, if any (may be an index digest). */
  digest?: string;
  platform: Platform;
  /** The image manifest for `platform`: the image's identity, and the erofs cache key. */
  manifestDigest: string;
  /** The index (manifest list) the manifest was chosen from, when there was one. */
  indexDigest?: string;
  configDigest: string;
  /** Bytes of manifest + config + layers in the store (compressed layers). */
  size: number;
  pulledAt: string;
}

export class ContentStore {
  readonly blobsDir: string;
  readonly ingestDir: string;
  readonly imagesDir: string;
  readonly erofsDir: string;

  constructor(readonly root: string) {
    this.blobsDir = path.join(root, 'blobs', 'sha256');
    this.ingestDir = path.join(root, 'ingest');
    this.imagesDir = path.join(root, 'images');
    this.erofsDir = path.join(root, 'erofs', 'sha256');
  }

  /** The store of this user (or of SMOLVM_HOME): <cache dir>/oci. */
  static open(env: NodeJS.ProcessEnv = process.env): ContentStore {
    return new ContentStore(path.join(smolvmDirs(env).cache, 'oci'));
  }

  blobPath(digest: string): string {
    return path.join(this.blobsDir, digestHex(digest));
  }

  /** A blob is present when its file exists with the expected size (content was verified on entry). */
  hasBlob(digest: string, size?: number): boolean {
    try {
      const st = fs.statSync(this.blobPath(digest));
      return st.isFile() && (size === undefined || st.size === size);
    } catch {
      return false;
    }
  }

  /** Reads a small blob (manifest, config) and re-checks its digest: these steer everything else. */
  readBlob(digest: string): Buffer {
    const bytes = fs.readFileSync(this.blobPath(digest));
    const actual = sha256Digest(bytes);
    if (actual !== digest)
      throw new DigestMismatchError(
        digest,
        actual,
        `stored blob ${digest} (the store is damaged; run gc and pull again)`,
      );
    return bytes;
  }

  /** Stores bytes already in memory, after checking them against `expected`. */
  putBlob(bytes: Uint8Array, expected?: string): string {
    const digest = sha256Digest(bytes);
    if (expected !== undefined && digest !== expected) throw new DigestMismatchError(expected, digest, 'blob');
    if (this.hasBlob(digest, bytes.length)) return digest;
    this.ensureDir(this.blobsDir);
    const target = this.blobPath(digest);
    const tmp = tempPathFor(target);
    const fd = fs.openSync(tmp, 'wx', 0o400);
    try {
      fs.writeFileSync(fd, bytes);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    commitTempFile(tmp, target);
    return digest;
  }

  /**
   * Moves a verified, fsynced file into the blob store. Renaming over an existing blob is fine:
   * equal digests mean equal content, so a concurrent writer of the same blob loses nothing.
   */
  commitBlobFile(file: string, digest: string): void {
    this.ensureDir(this.blobsDir);
    fs.chmodSync(file, 0o400);
    commitTempFile(file, this.blobPath(digest));
  }

  /**
   * Creates a directory of the store owner-only, the store's root too: images may come from
   * private registries, and what is stored here is what VMs boot.
   */
  ensureDir(dir: string): void {
    ensurePrivateDir(this.root);
    ensurePrivateDir(dir);
  }

  erofsPath(manifestDigest: string): string {
    return path.join(this.erofsDir, `${digestHex(manifestDigest)}.erofs`);
  }

  // Image records: one file per (reference, platform), so concurrent pulls of different images
  // never read-modify-write a shared index and cannot lose each other's updates.

  private recordPath(reference: string, platform: Platform): string {
    const key = `${reference}\n${formatPlatform(platform)}`;
    return path.join(this.imagesDir, `${crypto.createHash('sha256').update(key).digest('hex').slice(0, 32)}.json`);
  }

  putImage(record: ImageRecord): void {
    this.ensureDir(this.imagesDir);
    writeJsonAtomic(this.recordPath(record.reference, record.platform), {
      ...record,
      platform: normalizePlatform(record.platform),
    });
  }

  listImages(): ImageRecord[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.imagesDir);
    } catch {
      return [];
    }
    const records: ImageRecord[] = [];
    for (const name of names) {
      if (!name.endsWith('.json') || name.startsWith('.')) continue;
      try {
        const record = JSON.parse(fs.readFileSync(path.join(this.imagesDir, name), 'utf8')) as ImageRecord;
        if (typeof record.reference === 'string' && typeof record.manifestDigest === 'string') records.push(record);
      } catch {
        // A record removed between readdir and read, or unreadable: not an image we can list.
      }
    }
    return records.sort(
      (a, b) =>
        a.reference.localeCompare(b.reference) || formatPlatform(a.platform).localeCompare(formatPlatform(b.platform)),
    );
  }

  /**
   * Records matching a reference: the same canonical reference, or for a digest reference any
   * record with that manifest or index digest. Filtered by platform when one is given.
   */
  findImages(reference: string, digest: string | undefined, platform?: Platform): ImageRecord[] {
    return this.listImages().filter(
      (r) =>
        (r.reference === reference ||
          (digest !== undefined && (r.manifestDigest === digest || r.indexDigest === digest || r.digest === digest))) &&
        (platform === undefined || platformMatches(r.platform, platform)),
    );
  }

  removeImageRecord(record: ImageRecord): boolean {
    try {
      fs.unlinkSync(this.recordPath(record.reference, record.platform));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }
}
