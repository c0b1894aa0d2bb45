// Whether a `--from`/`--sidecar` value names a file or a reference: decided without the registry
// client, so that a command given a file never loads it.
import fs from 'node:fs';

/** `--from VALUE`: a file path (existing, or written like one), else an artifact reference to pull. */
export function isPackReference(value: string): boolean {
  if (
    value.startsWith('/') ||
    value.startsWith('./') ||
    value.startsWith('../') ||
    value.endsWith('.smolmachine') ||
    value === '.' ||
    value === '..'
  )
    return false;
  return !fs.existsSync(value);
}
