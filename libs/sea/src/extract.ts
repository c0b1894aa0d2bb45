// Extraction of a single executable's assets into the user's cache, once per build: the
// directory is named by the manifest's digest, written whole under a temp name and renamed, so a
// reader sees all of it or none, and two processes racing both end with the same directory.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { SmolvmError, assertTrustedPath, ensurePrivateDir, fsyncDir } from '@smolvm/common';
import { parseManifest, type SeaManifest } from './manifest';

/** Marker written last into a complete extraction. */
const COMPLETE = '.complete';
/** A staging directory this old is a crashed extraction's leftover. */
const STALE_STAGING_MS = 60 * 60_000;

export interface ExtractedAssets {
  /** `<cacheDir>/sea/<digest>`: owner-only, complete. */
  dir: string;
  digest: string;
  manifest: SeaManifest;
  /** The extracted path of a manifest file name ('vmlinux'); throws if the build carries none. */
  path(name: string): string;
  /** Whether the build carries that file. */
  has(name: string): boolean;
}

export interface ExtractOptions {
  /** smolvm's cache directory; assets go to `<cacheDir>/sea/<digest>`. */
  cacheDir: string;
  /** The manifest's text, as embedded. */
  manifestText: string;
  /** Reads one embedded asset (node:sea's getAsset in a single executable). */
  readAsset: (key: string) => Buffer;
}

export function manifestDigest(manifestText: string): string {
  return crypto.createHash('sha256').update(manifestText).digest('hex');
}

/**
 * The extracted assets, extracting them first if this user has not yet. Every file is checked
 * against the manifest's sha256 before the directory becomes visible; afterwards the directory
 * is trusted only if no other user can have written it (assertTrustedPath), since smolvm boots
 * the kernel and runs the programs in it.
 */
export function extractAssets(options: ExtractOptions): ExtractedAssets {
  const manifest = parseManifest(options.manifestText);
  const digest = manifestDigest(options.manifestText);
  const root = path.join(options.cacheDir, 'sea');
  const dir = path.join(root, digest.slice(0, 32));
  const names = new Set(manifest.files.map((f) => f.name));
  const result: ExtractedAssets = {
    dir,
    digest,
    manifest,
    has: (name) => names.has(name),
    path: (name) => {
      if (!names.has(name))
        throw new SmolvmError(`this smolvm executable carries no ${name}`, {
          remedy: 'rebuild it with tools/sea/build (npx nx build-sea cli)',
        });
      return path.join(dir, name);
    },
  };
  ensurePrivateDir(options.cacheDir);
  ensurePrivateDir(root);
  if (isComplete(dir, options.cacheDir)) return result;

  sweepStaging(root);
  const staging = fs.mkdtempSync(path.join(root, '.staging-'));
  try {
    for (const file of manifest.files) writeFile(staging, file, options.readAsset(file.asset));
    fs.writeFileSync(path.join(staging, COMPLETE), `${digest}\n`, { mode: 0o600 });
    fsyncDir(staging);
    try {
      fs.renameSync(staging, dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Another process finished the same extraction first: theirs is identical.
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && isComplete(dir, options.cacheDir)) return result;
      throw err;
    }
    fsyncDir(root);
  } catch (err) {
    throw new SmolvmError(`cannot extract this executable's assets into ${root}: ${(err as Error).message}`, {
      remedy: `check that ${root} is yours and has free space (about ${Math.ceil(totalBytes(manifest) / 2 ** 20)} MiB)`,
      cause: err,
    });
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
  return result;
}

function isComplete(dir: string, cacheDir: string): boolean {
  const marker = path.join(dir, COMPLETE);
  if (!fs.existsSync(marker)) return false;
  // Throws UntrustedPathError (with a remedy) if another user could have planted or changed it.
  assertTrustedPath(marker, cacheDir);
  assertTrustedPath(dir, cacheDir, 'dir');
  return true;
}

function writeFile(staging: string, file: SeaManifest['files'][number], asset: Buffer): void {
  const data = file.gzip ? zlib.gunzipSync(asset, { maxOutputLength: file.size + 1 }) : asset;
  if (data.length !== file.size || crypto.createHash('sha256').update(data).digest('hex') !== file.sha256) {
    throw new Error(`asset ${file.asset} (${file.name}) does not match its manifest entry: the executable is damaged`);
  }
  const target = path.join(staging, file.name);
  fs.mkdirSync(path.dirname(target), { recursive: true, mode: 0o700 });
  // Owner-only like everything smolvm keeps; executables keep their x bit for the owner.
  const fd = fs.openSync(target, 'wx', file.mode & 0o700);
  try {
    fs.writeSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function totalBytes(manifest: SeaManifest): number {
  return manifest.files.reduce((sum, f) => sum + f.size, 0);
}

function sweepStaging(root: string): void {
  const now = Date.now();
  for (const name of fs.readdirSync(root)) {
    if (!name.startsWith('.staging-')) continue;
    const p = path.join(root, name);
    try {
      if (now - fs.statSync(p).mtimeMs > STALE_STAGING_MS) fs.rmSync(p, { recursive: true, force: true });
    } catch {
      // Gone meanwhile.
    }
  }
}
