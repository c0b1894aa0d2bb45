import { invalid } from './invalid';
import { mergeByKey } from './merge-by-key';

export interface EnvVar {
  name: string;
  value: string;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const REMEDY = 'write NAME=VALUE where NAME is letters, digits and _ and does not start with a digit, e.g. PORT=8080';

function checkName(spec: string, name: string): void {
  if (name === '') throw invalid('environment variable', spec, 'name is empty', REMEDY);
  if (!NAME.test(name))
    throw invalid('environment variable', spec, `name "${name}" is not a valid variable name`, REMEDY);
}

/** Strict `NAME=VALUE` (Smolfile entries): the value may be empty and may contain "=". */
export function parseEnvEntry(spec: string): EnvVar {
  const eq = spec.indexOf('=');
  if (eq === -1) throw invalid('environment variable', spec, 'missing "="', REMEDY);
  const name = spec.slice(0, eq);
  checkName(spec, name);
  const value = spec.slice(eq + 1);
  if (value.includes('\0')) throw invalid('environment variable', spec, 'value contains a NUL character', REMEDY);
  return { name, value };
}

/**
 * `-e NAME=VALUE`, or `-e NAME` to pass the host's value through (Docker's behaviour, and the
 * way to hand a secret to the VM without it landing in shell history). A bare NAME that is not
 * set on the host is an error rather than silently dropped, so a typo cannot go unnoticed.
 */
export function parseEnvFlag(
  spec: string,
  hostEnv: Readonly<Record<string, string | undefined>> = process.env,
): EnvVar {
  if (spec.includes('=')) return parseEnvEntry(spec);
  checkName(spec, spec);
  const value = hostEnv[spec];
  if (value === undefined) {
    throw invalid(
      'environment variable',
      spec,
      `no "=" and ${spec} is not set on the host`,
      `write ${spec}=VALUE, or export ${spec} before running smolvm`,
    );
  }
  return { name: spec, value };
}

/** Later lists win per name; each name keeps the position of its first occurrence. */
export function mergeEnv(...lists: ReadonlyArray<readonly EnvVar[]>): EnvVar[] {
  return mergeByKey(lists, (v) => v.name);
}
