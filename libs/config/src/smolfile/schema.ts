// The keys each Smolfile table accepts, and the "unknown key" diagnosis built on them.
import type { ConfigError } from '@smolvm/common';
import { closestMatch } from '../suggest';
import { formatKeyPath, type KeyPath } from './key-path';
import type { Reader, TomlValue } from './reader';

export const SMOLFILE_TABLES = ['network', 'dev', 'artifact', 'health', 'auth'] as const;

export const SMOLFILE_KEYS: Readonly<Record<string, readonly string[]>> = {
  '': [
    'image',
    'entrypoint',
    'cmd',
    'env',
    'workdir',
    'cpus',
    'memory',
    'net',
    'storage',
    'overlay',
    ...SMOLFILE_TABLES,
  ],
  network: ['allow_hosts', 'allow_cidrs'],
  dev: ['volumes', 'ports', 'init', 'env', 'workdir'],
  artifact: ['cpus', 'memory', 'entrypoint', 'oci_platform'],
  health: ['exec', 'interval', 'timeout', 'retries', 'startup_grace'],
  auth: ['ssh_agent'],
};

function describeTable(table: string): string {
  return table === '' ? 'the top level' : `[${table}]`;
}

/**
 * Explains an unknown key as precisely as possible: a key that is valid in another table was
 * most likely written under the wrong header (e.g. `volumes` above `[dev]`), otherwise it is
 * probably a typo of a key of this table.
 */
export function unknownKey(r: Reader, table: string, key: string, value: TomlValue): ConfigError {
  const path: KeyPath = table === '' ? [key] : [table, key];
  const isTable = table === '' && r.typeName(path, value) === 'table';
  const homes = Object.keys(SMOLFILE_KEYS).filter(
    (t) =>
      t !== table &&
      SMOLFILE_KEYS[t].includes(key) &&
      !(t === '' && (SMOLFILE_TABLES as readonly string[]).includes(key)),
  );
  if (homes.length > 0 && !isTable) {
    const where = homes
      .map((h) => (h === '' ? 'to the top level (above the first [table])' : `under [${h}]`))
      .join(' or ');
    return r.error(path, `'${key}' is not a key of ${describeTable(table)}`, `move it ${where}`);
  }
  const candidates = isTable ? SMOLFILE_TABLES : SMOLFILE_KEYS[table];
  const suggestion = closestMatch(key, candidates);
  const message = isTable ? `unknown table [${key}]` : table === '' ? 'unknown key' : `unknown key in [${table}]`;
  if (suggestion !== undefined) {
    const name = isTable ? `[${suggestion}]` : `'${formatKeyPath(table === '' ? [suggestion] : [table, suggestion])}'`;
    return r.error(path, message, `did you mean ${name}?`);
  }
  return r.error(
    path,
    message,
    `remove it; ${describeTable(isTable ? '' : table)} accepts ${isTable ? SMOLFILE_TABLES.map((t) => `[${t}]`).join(', ') : candidates.join(', ')}`,
  );
}
