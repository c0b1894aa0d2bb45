// Machine names become directory names, socket paths, URL path segments (`/api/v1/machines/:name`)
// and the `NAME:` prefix of `machine cp`, so they are restricted to a set that is safe in all of them.
import { UsageError } from '@smolvm/common';

export const DEFAULT_MACHINE_NAME = 'default';
export const MAX_MACHINE_NAME_LENGTH = 63;

const NAME_RULES =
  "use 1-63 characters from a-z, 0-9, '_', '.' and '-', starting with a letter or digit (for example \"my-vm\")";

/** Shows a user-supplied name safely: quoted, control characters escaped, bounded length. */
function show(name: string): string {
  const clipped = name.length > 80 ? `${name.slice(0, 77)}...` : name;
  return JSON.stringify(clipped);
}

function hasControlCharacter(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function invalid(name: string, why: string, remedy = NAME_RULES): UsageError {
  return new UsageError(`invalid machine name ${show(name)}: ${why}`, { remedy });
}

/**
 * Throws a UsageError unless `name` is a valid machine name.
 *
 * Uppercase is rejected rather than folded: on case-insensitive filesystems (macOS default)
 * "Web" and "web" would silently share one directory, and a name that is also a guest
 * hostname is case-insensitive there too. Rejecting keeps one spelling per machine.
 */
export function validateMachineName(name: unknown): asserts name is string {
  if (typeof name !== 'string') {
    throw new UsageError(`invalid machine name: expected a string, got ${name === null ? 'null' : typeof name}`, {
      remedy: NAME_RULES,
    });
  }
  if (name.length === 0) throw invalid(name, 'must not be empty');
  if (name.includes('\0')) throw invalid(name, 'contains a NUL byte');
  if (/\s/.test(name)) throw invalid(name, 'contains whitespace');
  if (hasControlCharacter(name)) throw invalid(name, 'contains a control character');
  if (name.includes('/') || name.includes('\\')) throw invalid(name, 'contains a path separator');
  if (name === '.' || name === '..') throw invalid(name, 'is reserved');
  if (name.includes('..')) throw invalid(name, "must not contain '..'");
  if (name.startsWith('-')) throw invalid(name, "must not start with '-' (it would read as a flag)");
  if (name.length > MAX_MACHINE_NAME_LENGTH) {
    throw invalid(name, `is ${name.length} characters long; the limit is ${MAX_MACHINE_NAME_LENGTH}`);
  }
  if (/[A-Z]/.test(name)) {
    const lower = name.toLowerCase();
    const suggestion = isValidMachineName(lower) ? `use lowercase, for example ${show(lower)}` : NAME_RULES;
    throw invalid(name, 'must be lowercase', suggestion);
  }
  if (!/^[a-z0-9]/.test(name)) throw invalid(name, 'must start with a lowercase letter or digit');
  const bad = /[^a-z0-9_.-]/.exec(name);
  if (bad) throw invalid(name, `contains ${JSON.stringify(bad[0])}, which is not allowed`);
}

export function isValidMachineName(name: unknown): name is string {
  try {
    validateMachineName(name);
    return true;
  } catch {
    return false;
  }
}
