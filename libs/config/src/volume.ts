import os from 'node:os';
import path from 'node:path';
import { guestPathProblem, normalizeGuestPath } from './guest-path';
import { invalid } from './invalid';

export interface VolumeMount {
  /** Absolute host path. Existence is checked when the VM starts, not here. */
  hostPath: string;
  /** Absolute, normalized guest path. */
  guestPath: string;
  readOnly: boolean;
}

const REMEDY = 'write HOST:GUEST[:ro], e.g. ./src:/app or ./data:/data:ro';

function expandHome(p: string): string {
  // Smolfiles are not shell-expanded, so "~/src" would otherwise become "<dir>/~/src".
  if (p === '~') return os.homedir();
  if (p.startsWith('~/')) return path.join(os.homedir(), p.slice(2));
  return p;
}

/**
 * Parses `HOST:GUEST[:ro|rw]`. Relative host paths resolve against `baseDir` (the current
 * directory for -v, the Smolfile's directory for [dev] volumes).
 */
export function parseVolume(spec: string, baseDir: string = process.cwd()): VolumeMount {
  const parts = spec.split(':');
  if (parts.length < 2) throw invalid('volume', spec, 'missing ":GUEST" part', REMEDY);
  if (parts.length > 3) throw invalid('volume', spec, 'too many ":" separators', REMEDY);
  const [host, guest, option] = parts;
  if (host === '') throw invalid('volume', spec, 'host path is empty', REMEDY);
  if (host.includes('\0')) throw invalid('volume', spec, 'host path contains a NUL character', REMEDY);
  let readOnly = false;
  if (option !== undefined) {
    if (option !== 'ro' && option !== 'rw') {
      throw invalid('volume', spec, `unknown option "${option}" (only "ro" or "rw")`, REMEDY);
    }
    readOnly = option === 'ro';
  }
  const problem = guestPathProblem(guest, false);
  if (problem) throw invalid('volume', spec, `guest path ${problem}`, REMEDY);
  return { hostPath: path.resolve(baseDir, expandHome(host)), guestPath: normalizeGuestPath(guest), readOnly };
}
