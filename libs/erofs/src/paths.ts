// Image paths are "byte strings": JS strings whose char codes are the raw bytes (latin1), so names
// that are not UTF-8 survive a tar -> erofs round trip unchanged.
import { EntryProblem } from './errors';
import { MAX_NAME } from './format';

/** Linux PATH_MAX: no runtime could have extracted a longer path either. */
export const MAX_PATH = 4096;

export const toByteString = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');
export const fromByteString = (s: string): string => Buffer.from(s, 'latin1').toString('utf8');

/**
 * Normalises an entry path to components inside the image root. Leading '/', '.' and empty components
 * are dropped and '..' is resolved lexically; a path that climbs above the root is rejected rather than
 * clamped, because no well-formed layer contains one.
 */
export function splitPath(p: string): string[] {
  if (p.includes('\0')) throw new EntryProblem('path contains a NUL byte');
  if (p.length > MAX_PATH) throw new EntryProblem(`path longer than ${MAX_PATH} bytes`);
  const out: string[] = [];
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (out.length === 0) throw new EntryProblem('path escapes the image root');
      out.pop();
      continue;
    }
    checkName(c);
    out.push(c);
  }
  return out;
}

export function checkName(name: string): void {
  if (name.length === 0 || name === '.' || name === '..') throw new EntryProblem(`invalid file name '${name}'`);
  if (name.length > MAX_NAME) throw new EntryProblem(`file name longer than ${MAX_NAME} bytes`);
  if (name.includes('/') || name.includes('\0')) throw new EntryProblem('file name contains "/" or NUL');
}
