// Registry authentication: learns each registry's challenge (Basic or Bearer) and answers it,
// fetching bearer tokens from the token service (anonymously, with basic credentials, or with a
// refresh token) per repository scope, cached until shortly before they expire.
import type { IncomingHttpHeaders } from 'node:http';
import { readBounded } from './bounded-body';
import type { Credentials, RegistryConfig } from './credentials';
import type { Endpoint } from './endpoint';
import { isLoopbackHost } from './endpoint';
import { RegistryAuthError } from './errors';
import type { Transport } from './transport';
import { parseWwwAuthenticate, type AuthChallenge } from './www-authenticate';

export type Action = 'pull' | 'push';

export function repositoryScope(repository: string, actions: Action[]): string {
  return `repository:${repository}:${actions.join(',')}`;
}

interface CachedToken {
  header: string;
  expiresAt: number;
}

/** Tokens are refreshed this long before the server says they expire, to survive clock skew. */
const EXPIRY_MARGIN_MS = 10_000;
/** A token answer is a JWT or two in JSON: a few KiB. */
const MAX_TOKEN_BODY_BYTES = 1024 * 1024;
/** The token spec's default lifetime when expires_in is absent. */
const DEFAULT_TOKEN_SECONDS = 60;

function basicHeader(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

export class Authenticator {
  /** undefined: not learned yet; null: the registry needs no authentication. */
  private readonly challenges = new Map<string, AuthChallenge | null>();
  private readonly tokens = new Map<string, CachedToken>();

  constructor(
    private readonly transport: Transport,
    private readonly config: RegistryConfig,
  ) {}

  credentials(endpoint: Endpoint): Credentials | undefined {
    return this.config.credentials(endpoint.registry);
  }

  /** Records what a /v2/ ping (or any answer) said about authentication. */
  learn(endpoint: Endpoint, status: number, headers: IncomingHttpHeaders): void {
    if (status !== 401) {
      if (!this.challenges.has(endpoint.registry)) this.challenges.set(endpoint.registry, null);
      return;
    }
    const challenge = pickChallenge(parseWwwAuthenticate(headers['www-authenticate']));
    if (challenge) this.challenges.set(endpoint.registry, challenge);
  }

  challengeOf(endpoint: Endpoint): AuthChallenge | null | undefined {
    return this.challenges.get(endpoint.registry);
  }

  /** The Authorization header to send up front, when the registry's scheme is already known. */
  async header(endpoint: Endpoint, scopes: string[], signal?: AbortSignal): Promise<string | undefined> {
    const challenge = this.challenges.get(endpoint.registry);
    if (!challenge) return undefined;
    return this.answer(endpoint, challenge, scopes, signal);
  }

  /**
   * Handles a 401: learns the challenge and returns a fresh header to retry with. Throws a clear
   * error when there is nothing new to try.
   */
  async reauthenticate(
    endpoint: Endpoint,
    scopes: string[],
    headers: IncomingHttpHeaders,
    signal?: AbortSignal,
  ): Promise<string> {
    const challenge = pickChallenge(parseWwwAuthenticate(headers['www-authenticate']));
    if (!challenge) throw this.failure(endpoint, 'the registry sent no usable WWW-Authenticate challenge');
    this.challenges.set(endpoint.registry, challenge);
    for (const key of [...this.tokens.keys()]) if (key.startsWith(`${endpoint.registry} `)) this.tokens.delete(key);
    const extra = challenge.params.scope;
    const all = extra && !scopes.includes(extra) ? [...scopes, extra] : scopes;
    const header = await this.answer(endpoint, challenge, all, signal);
    if (header === undefined) throw this.failure(endpoint);
    return header;
  }

  /** The error for a request that is still unauthorized after we answered the challenge. */
  failure(endpoint: Endpoint, detail?: string): RegistryAuthError {
    const creds = this.credentials(endpoint);
    if (!creds) {
      const hint = this.config.credentialHint(endpoint.registry);
      return new RegistryAuthError(
        endpoint.registry,
        'required',
        detail ?? hint ?? 'anonymous access was refused; the repository may be private or not exist',
      );
    }
    return new RegistryAuthError(
      endpoint.registry,
      'failed',
      detail ?? `credentials from ${creds.source} were rejected`,
    );
  }

  forget(endpoint: Endpoint, scopes: string[]): void {
    this.tokens.delete(`${endpoint.registry} ${scopes.join(' ')}`);
  }

  private async answer(
    endpoint: Endpoint,
    challenge: AuthChallenge,
    scopes: string[],
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const creds = this.credentials(endpoint);
    if (challenge.scheme === 'basic') {
      return creds?.kind === 'basic' ? basicHeader(creds.username, creds.password) : undefined;
    }
    if (creds?.kind === 'bearer') return `Bearer ${creds.token}`;
    const key = `${endpoint.registry} ${scopes.join(' ')}`;
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return cached.header;
    const token = await this.fetchToken(endpoint, challenge, scopes, creds, signal);
    this.tokens.set(key, token);
    return token.header;
  }

  private async fetchToken(
    endpoint: Endpoint,
    challenge: AuthChallenge,
    scopes: string[],
    creds: Credentials | undefined,
    signal?: AbortSignal,
  ): Promise<CachedToken> {
    const realm = challenge.params.realm;
    if (!realm) throw this.failure(endpoint, 'bearer challenge without a realm');
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw this.failure(endpoint, `bearer realm '${realm}' is not a URL`);
    }
    // Credentials go to the token service only over TLS, unless it is on this machine or the
    // registry itself was explicitly marked insecure.
    const plainAllowed = isLoopbackHost(url.hostname) || this.config.settings(endpoint.registry).insecure === true;
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && plainAllowed)) {
      throw this.failure(endpoint, `token service ${url.origin} is not HTTPS`);
    }
    const service = challenge.params.service;
    let res;
    if (creds?.kind === 'refresh') {
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: creds.refreshToken,
        client_id: 'smolvm',
      });
      if (service) form.set('service', service);
      if (scopes.length) form.set('scope', scopes.join(' '));
      res = await this.transport.send({
        method: 'POST',
        url: url.toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: Buffer.from(form.toString()),
        signal,
      });
    } else {
      if (service) url.searchParams.set('service', service);
      for (const scope of scopes) url.searchParams.append('scope', scope);
      const headers: Record<string, string> = {};
      if (creds?.kind === 'basic') {
        url.searchParams.set('account', creds.username);
        headers.authorization = basicHeader(creds.username, creds.password);
      }
      res = await this.transport.send({ method: 'GET', url: url.toString(), headers, signal });
    }
    if (res.status === 401 || res.status === 403) {
      await res.body.dump().catch(() => {});
      throw this.failure(
        endpoint,
        creds ? `the token service at ${url.origin} rejected the credentials from ${creds.source}` : undefined,
      );
    }
    if (res.status !== 200) {
      await res.body.dump().catch(() => {});
      throw this.failure(endpoint, `the token service at ${url.origin} answered HTTP ${res.status}`);
    }
    const bytes = await readBounded(res.body, MAX_TOKEN_BODY_BYTES);
    if (!bytes)
      throw this.failure(endpoint, `the token service at ${url.origin} sent more than ${MAX_TOKEN_BODY_BYTES} bytes`);
    let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      doc = JSON.parse(bytes.toString('utf8')) as typeof doc;
    } catch {
      throw this.failure(endpoint, `the token service at ${url.origin} sent no JSON`);
    }
    const token =
      typeof doc.token === 'string' && doc.token
        ? doc.token
        : typeof doc.access_token === 'string'
          ? doc.access_token
          : '';
    if (!token) throw this.failure(endpoint, `the token service at ${url.origin} sent no token`);
    const seconds = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : DEFAULT_TOKEN_SECONDS;
    return { header: `Bearer ${token}`, expiresAt: Date.now() + seconds * 1000 - EXPIRY_MARGIN_MS };
  }
}

/** Bearer is preferred: it is what the distribution spec describes and scopes access per repository. */
function pickChallenge(challenges: AuthChallenge[]): AuthChallenge | undefined {
  return challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
}
