// In-flight downloads ("ingests"): partial blob files that survive a crash so the next pull can
// resume them. Each is named after its owner (pid + start time + a random tag); a new download
// claims a partial of a dead owner by renaming it to its own name. rename is atomic, so of two
// claimants exactly one wins and no two writers ever share a file — no lock file needed.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { currentProcessIdentity, ensurePrivateDir, isProcessAlive } from '@smolvm/common';

export interface Ingest {
  path: string;
  /** Bytes already present from an earlier attempt (0 for a fresh file). */
  resumedFrom: number;
  release(): void;
}

const self = currentProcessIdentity();
const selfTag = `${self.pid}-${self.startTime ?? 'x'}`;
/** Partials this process is writing right now (several pulls can run in one process). */
const active = new Set<string>();

const NAME = /^([a-f0-9]{64})\.(\d+)-(\d+|x)-[a-f0-9]+\.partial$/;

export function parseIngestName(name: string): { hex: string; pid: number; startTime: number | null } | undefined {
  const m = NAME.exec(name);
  if (!m) return undefined;
  return { hex: m[1], pid: Number(m[2]), startTime: m[3] === 'x' ? null : Number(m[3]) };
}

/** Whether nobody is writing this partial any more, so it may be resumed or removed. */
export function isAbandoned(dir: string, name: string): boolean {
  const parsed = parseIngestName(name);
  if (!parsed) return false;
  if (parsed.pid === self.pid && parsed.startTime === self.startTime) return !active.has(path.join(dir, name));
  return !isProcessAlive({ pid: parsed.pid, startTime: parsed.startTime });
}

export function claimIngest(dir: string, hex: string): Ingest {
  ensurePrivateDir(dir);
  const mine = path.join(dir, `${hex}.${selfTag}-${crypto.randomBytes(4).toString('hex')}.partial`);
  let resumedFrom = 0;
  let claimed = false;
  for (const name of fs.readdirSync(dir)) {
    if (!name.startsWith(`${hex}.`) || !isAbandoned(dir, name)) continue;
    try {
      fs.renameSync(path.join(dir, name), mine);
      resumedFrom = fs.statSync(mine).size;
      claimed = true;
      break;
    } catch (err) {
      // Another process claimed it first; look for the next one or start afresh.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  if (!claimed) fs.writeFileSync(mine, '', { flag: 'wx', mode: 0o600 });
  active.add(mine);
  return { path: mine, resumedFrom, release: () => active.delete(mine) };
}
