// Native erofs-utils (fsck.erofs, dump.erofs) and temp-dir helpers: test-only oracles, never used by the
// library itself.
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function tempDir(prefix = 'erofs-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

/** Runs fsck.erofs (with the image's extra devices, if any); throws with its output when it reports a problem. */
export function fsck(image: string, extractTo?: string, devices: readonly string[] = []): string {
  const args = [...devices.map((d) => `--device=${d}`), ...(extractTo ? [`--extract=${extractTo}`] : []), image];
  const r = spawnSync('fsck.erofs', args, { encoding: 'utf8' });
  const out = `${r.stdout}${r.stderr}`;
  if (r.status !== 0) throw new Error(`fsck.erofs ${args.join(' ')} failed (${r.status}):\n${out}`);
  return out;
}

export function dumpSuperblock(image: string): string {
  return execFileSync('dump.erofs', ['-s', image], { encoding: 'utf8' });
}

export const sha256 = (b: Uint8Array): string => crypto.createHash('sha256').update(b).digest('hex');

/** Files left in a directory, for checking that failed builds leave nothing behind. */
export function listDir(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}
