// registries.toml: smolvm's own per-registry settings (credentials, plain HTTP, mirrors).
// It may hold secrets, so a file with credentials must not be readable by group or others.
import fs from 'node:fs';
import path from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { ConfigError, UntrustedPathError, assertTrustedPath, ensurePrivateDir, smolvmDirs } from '@smolvm/common';
import { KeyLocator } from '@smolvm/config';

export interface RegistrySettings {
  username?: string;
  password?: string;
  /** Sent as-is as a bearer token (a registry access token), skipping the token endpoint. */
  token?: string;
  /** Plain HTTP for a non-loopback registry (loopback registries use HTTP anyway). */
  insecure?: boolean;
  /** Hosts tried in order before this registry when pulling; each has its own settings entry. */
  mirrors?: string[];
}

export interface RegistriesFile {
  path: string;
  /** Keyed by normalized registry host ("docker.io", "ghcr.io", "127.0.0.1:5000"). */
  registries: Map<string, RegistrySettings>;
  /** `[artifacts] registry`: where artifact names without a registry go (pack push/pull). */
  artifactRegistry?: string;
}

export const REGISTRIES_FILE_NAME = 'registries.toml';

export function registriesFilePath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(smolvmDirs(env).config, REGISTRIES_FILE_NAME);
}

/** Folds the spellings of one registry onto the key the store and the reference parser use. */
export function normalizeRegistryHost(host: string): string {
  const lower = host.trim().toLowerCase();
  if (lower === 'index.docker.io' || lower === 'registry-1.docker.io' || lower === 'registry.hub.docker.com')
    return 'docker.io';
  return lower;
}

const HOST = /^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)(:\d{1,5})?$/;
const KEYS = ['username', 'password', 'token', 'insecure', 'mirrors'] as const;

export const REGISTRIES_FILE_TEMPLATE = `# smolvm registry settings. Keep this file private (mode 0600): it may hold credentials.
# One table per registry host, written exactly as in image references (docker.io, ghcr.io,
# 127.0.0.1:5000). Keys:
#   username, password   basic credentials (also used to obtain bearer tokens)
#   token                a registry access token, sent as "Authorization: Bearer <token>"
#   insecure = true      plain HTTP (registries on 127.0.0.1, ::1 and localhost use HTTP anyway)
#   mirrors = ["host"]   pull through these hosts first, in order, then the registry itself
#
# [artifacts]
# registry = "registry.lan:5000"   where pack names without a registry (python-dev:v1) go;
#                                  registry.smolmachines.com when unset
#
# [registries."ghcr.io"]
# username = "me"
# password = "ghp_..."
#
# [registries."docker.io"]
# mirrors = ["mirror.example.com"]
#
# [registries."registry.lan:5000"]
# insecure = true
`;

/** Creates the file (mode 0600, commented template) when missing; returns its path. For `config registries edit`. */
export function ensureRegistriesFile(file: string = registriesFilePath()): string {
  ensurePrivateDir(path.dirname(file));
  try {
    fs.writeFileSync(file, REGISTRIES_FILE_TEMPLATE, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return file;
}

function parseEntry(file: string, host: string, value: unknown, locator: KeyLocator): RegistrySettings {
  const keyPath = `registries."${host}"`;
  const line = locator.line(['registries', host]);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(
      'must be a table',
      { file, line, keyPath },
      { remedy: `write [${keyPath}] followed by its keys` },
    );
  }
  const entry: RegistrySettings = {};
  for (const [key, v] of Object.entries(value)) {
    const at = { file, line: locator.line(['registries', host, key]), keyPath: `${keyPath}.${key}` };
    switch (key as (typeof KEYS)[number]) {
      case 'username':
      case 'password':
      case 'token':
        if (typeof v !== 'string' || v === '') throw new ConfigError('must be a non-empty string', at);
        entry[key as 'username' | 'password' | 'token'] = v;
        break;
      case 'insecure':
        if (typeof v !== 'boolean') throw new ConfigError('must be true or false', at);
        entry.insecure = v;
        break;
      case 'mirrors':
        if (!Array.isArray(v) || v.some((m) => typeof m !== 'string' || !HOST.test(normalizeRegistryHost(m)))) {
          throw new ConfigError('must be a list of registry hosts such as "mirror.example.com:5000"', at);
        }
        entry.mirrors = v.map((m) => normalizeRegistryHost(m as string));
        break;
      default:
        throw new ConfigError(`unknown key '${key}'`, at, { remedy: `use one of ${KEYS.join(', ')}` });
    }
  }
  if (entry.password !== undefined && entry.username === undefined) {
    throw new ConfigError('password needs a username', { file, line, keyPath }, { remedy: 'add username = "..."' });
  }
  if (entry.username !== undefined && entry.password === undefined) {
    throw new ConfigError('username needs a password', { file, line, keyPath }, { remedy: 'add password = "..."' });
  }
  if (entry.token !== undefined && entry.username !== undefined) {
    throw new ConfigError('set either username/password or token, not both', { file, line, keyPath });
  }
  return entry;
}

function hasSecrets(registries: Map<string, RegistrySettings>): boolean {
  return [...registries.values()].some((r) => r.password !== undefined || r.token !== undefined);
}

/**
 * Reads and validates the file; a missing file is an empty configuration. Refuses a file that
 * holds credentials while group or others can read it, instead of using leaked secrets silently.
 */
export function loadRegistriesFile(file: string = registriesFilePath()): RegistriesFile {
  let text: string;
  try {
    // Its mirrors and insecure hosts decide where images (what VMs run) come from: a file another
    // user could have written or swapped is refused (UntrustedPathError), not used. A symlink
    // (dotfiles) is fine if no one else could have placed it or can change what it points at.
    if (process.platform !== 'win32') {
      const dir = path.dirname(path.resolve(file));
      assertTrustedPath(dir, dir, 'dir');
      const real = fs.realpathSync(file);
      assertTrustedPath(real, path.dirname(real));
    }
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof UntrustedPathError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { path: file, registries: new Map() };
    throw new ConfigError(`cannot read: ${(err as Error).message}`, { file });
  }
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof TomlError) {
      throw new ConfigError(
        err.message.split('\n')[0],
        { file, line: err.line },
        { remedy: "fix the TOML syntax with 'smolvm config registries edit'" },
      );
    }
    throw err;
  }
  const locator = new KeyLocator(text);
  const registries = new Map<string, RegistrySettings>();
  let artifactRegistry: string | undefined;
  for (const [key, value] of Object.entries(doc)) {
    if (key === 'artifacts') {
      artifactRegistry = parseArtifacts(file, value, locator);
      continue;
    }
    if (key !== 'registries') {
      throw new ConfigError(
        `unknown key '${key}'`,
        { file, line: locator.line([key]), keyPath: key },
        { remedy: 'put settings under [registries."HOST"] or [artifacts]' },
      );
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new ConfigError('must be a table of registry hosts', {
        file,
        line: locator.line(['registries']),
        keyPath: 'registries',
      });
    }
    for (const [host, entry] of Object.entries(value)) {
      const normalized = normalizeRegistryHost(host);
      if (!HOST.test(normalized)) {
        throw new ConfigError(
          'is not a registry host',
          { file, line: locator.line(['registries', host]), keyPath: `registries."${host}"` },
          {
            remedy:
              'write the host (and port) only, for example "ghcr.io" or "127.0.0.1:5000", without https:// or a path',
          },
        );
      }
      registries.set(normalized, parseEntry(file, host, entry, locator));
    }
  }
  if (process.platform !== 'win32' && hasSecrets(registries)) {
    const mode = fs.statSync(file).mode & 0o777;
    if (mode & 0o044) {
      throw new ConfigError(
        `holds credentials but is readable by ${mode & 0o004 ? 'others' : 'its group'} (mode ${mode.toString(8).padStart(4, '0')})`,
        { file },
        {
          remedy: `run 'chmod 600 ${file}'`,
        },
      );
    }
  }
  return artifactRegistry === undefined ? { path: file, registries } : { path: file, registries, artifactRegistry };
}

function parseArtifacts(file: string, value: unknown, locator: KeyLocator): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(
      'must be a table',
      { file, line: locator.line(['artifacts']), keyPath: 'artifacts' },
      { remedy: 'write [artifacts] followed by registry = "HOST"' },
    );
  }
  let registry: string | undefined;
  for (const [key, v] of Object.entries(value)) {
    const at = { file, line: locator.line(['artifacts', key]), keyPath: `artifacts.${key}` };
    if (key !== 'registry') throw new ConfigError(`unknown key '${key}'`, at, { remedy: 'use registry' });
    if (typeof v !== 'string' || !HOST.test(normalizeRegistryHost(v))) {
      throw new ConfigError('must be a registry host such as "registry.example.com" or "127.0.0.1:5000"', at, {
        remedy: 'write the host (and port) only, without https:// or a path',
      });
    }
    registry = normalizeRegistryHost(v);
  }
  return registry;
}
