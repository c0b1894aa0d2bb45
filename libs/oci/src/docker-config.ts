// Credentials that `docker login` left in ~/.docker/config.json, so users need not repeat them.
// Credential helpers (credsStore, credHelpers) run external programs and are not supported.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isJsonObject } from '@smolvm/common';
import { normalizeRegistryHost } from './registries-file';

export interface DockerAuth {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (`docker login` against registries that issue one). */
  identityToken?: string;
}

export interface DockerConfigAuths {
  path: string;
  auths: Map<string, DockerAuth>;
  /** Hosts whose credentials live in a credential helper we cannot query. */
  helperHosts: Set<string>;
  /** True when a default credsStore hides every credential from us. */
  usesCredsStore: boolean;
}

export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG ? path.resolve(env.DOCKER_CONFIG) : path.join(env.HOME ?? os.homedir(), '.docker');
  return path.join(dir, 'config.json');
}

/** Decodes the base64 "user:password" of an `auth` field; the password may contain colons. */
export function decodeDockerAuth(auth: string): { username: string; password: string } | undefined {
  const text = Buffer.from(auth, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon <= 0) return undefined;
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** "https://index.docker.io/v1/" and "ghcr.io" alike -> the bare host key. */
export function dockerConfigKeyToHost(key: string): string {
  const withoutScheme = key.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  return normalizeRegistryHost(withoutScheme.split('/')[0]);
}

/**
 * Reads the auths; a missing file yields none. A malformed file is reported through `warn` and
 * ignored: it belongs to Docker, and a broken one should not stop smolvm from pulling.
 */
export function loadDockerConfigAuths(
  file: string = dockerConfigPath(),
  warn: (message: string) => void = () => {},
): DockerConfigAuths {
  const result: DockerConfigAuths = { path: file, auths: new Map(), helperHosts: new Set(), usesCredsStore: false };
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') warn(`ignoring ${file}: ${(err as Error).message}`);
    return result;
  }
  if (!isJsonObject(doc)) {
    warn(`ignoring ${file}: not a JSON object`);
    return result;
  }
  if (typeof doc.credsStore === 'string' && doc.credsStore !== '') result.usesCredsStore = true;
  if (isJsonObject(doc.credHelpers))
    for (const key of Object.keys(doc.credHelpers)) result.helperHosts.add(dockerConfigKeyToHost(key));
  if (!isJsonObject(doc.auths)) return result;
  for (const [key, value] of Object.entries(doc.auths)) {
    if (!isJsonObject(value)) continue;
    const entry: DockerAuth = {};
    if (typeof value.auth === 'string' && value.auth !== '') {
      const decoded = decodeDockerAuth(value.auth);
      if (decoded) Object.assign(entry, decoded);
      else warn(`ignoring the auth field for '${key}' in ${file}: not base64 of user:password`);
    } else if (typeof value.username === 'string' && typeof value.password === 'string') {
      entry.username = value.username;
      entry.password = value.password;
    }
    if (typeof value.identitytoken === 'string' && value.identitytoken !== '')
      entry.identityToken = value.identitytoken;
    if (entry.username !== undefined || entry.identityToken !== undefined)
      result.auths.set(dockerConfigKeyToHost(key), entry);
  }
  return result;
}
