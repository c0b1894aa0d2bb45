// Guest paths are interpreted inside the VM, so they are validated as POSIX paths regardless
// of the host OS, and must be absolute: there is no meaningful guest "current directory" to
// resolve a relative path against when the VM is being configured.
import path from 'node:path';
import { invalid } from './invalid';

/** Why `input` is not an acceptable guest path, or undefined when it is. */
export function guestPathProblem(input: string, allowRoot: boolean): string | undefined {
  if (input === '') return 'is empty';
  if (input.includes('\0')) return 'contains a NUL character';
  if (!input.startsWith('/')) return 'must be absolute (start with /)';
  // Refused rather than normalized away: "/app/../etc" is almost always a mistake, and silently
  // mounting onto /etc would be worse than an error.
  if (input.split('/').includes('..')) return 'must not contain ".." components';
  if (!allowRoot && normalizeGuestPath(input) === '/') return 'must not be the root directory /';
  return undefined;
}

export function normalizeGuestPath(input: string): string {
  return path.posix.normalize(input).replace(/(.)\/+$/, '$1');
}

/** Returns the normalized absolute guest path ("/app//src/" -> "/app/src"). */
export function parseGuestPath(input: string, kind = 'guest path', options: { allowRoot?: boolean } = {}): string {
  const problem = guestPathProblem(input, options.allowRoot ?? false);
  if (problem) throw invalid(kind, input, problem, 'write an absolute path inside the VM, e.g. /app');
  return normalizeGuestPath(input);
}
