// Checks remembered per file identity under `<cache>/pack/verified/`: a file hashed right before,
// and unchanged since (any write changes its ctime), is not hashed again. Used for a pack's
// sections (PackFile.verify) and for the executable bytes a pack's runtime is read from.
import crypto from 'node:crypto';
import type fs from 'node:fs';
import path from 'node:path';
import { assertTrustedPath, ensurePrivateDir, writeJsonAtomic } from '@smolvm/common';

/** What identifies one version of a file: a change of content changes at least ctime. */
export interface FileIdentity {
  dev: string;
  ino: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
}

export function identityOf(st: fs.BigIntStats): FileIdentity {
  return {
    dev: String(st.dev),
    ino: String(st.ino),
    size: String(st.size),
    mtimeNs: String(st.mtimeNs),
    ctimeNs: String(st.ctimeNs),
  };
}

export function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The record of one check: `key` holds the file's identity and what it was checked against. */
export function verifiedRecordPath(cacheDir: string, key: unknown): string {
  const name = crypto.createHash('sha256').update(JSON.stringify(key)).digest('hex');
  return path.join(cacheDir, 'pack', 'verified', `${name}.json`);
}

/** Whether the check was remembered, by a record only this user can have written. */
export function isRemembered(record: string, cacheDir: string): boolean {
  try {
    assertTrustedPath(record, cacheDir);
    return true;
  } catch {
    return false;
  }
}

/** Remembers a check; quietly not when the cache cannot be written (the next use checks again). */
export function remember(record: string, value: Record<string, unknown>): void {
  try {
    ensurePrivateDir(path.dirname(record));
    writeJsonAtomic(record, { ...value, verified: new Date().toISOString() });
  } catch {
    // Not remembered.
  }
}
