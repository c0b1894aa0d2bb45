// The registry HTTP API v2 (OCI distribution spec), pull side: ping, manifests, blobs. Every
// request goes through `request`, which authenticates, answers a 401 once, and maps errors.
import type { IncomingHttpHeaders } from 'node:http';
import { RegistryConfig, type RegistryConfigOptions } from './credentials';
import { sha256Digest } from './digest';
import { apiUrl, resolveEndpoint, type ApiKind, type Endpoint } from './endpoint';
import { readBounded } from './bounded-body';
import { DigestMismatchError, ImageNotFoundError, RegistryAuthError, RegistryError, RetryableError } from './errors';
import { Authenticator, repositoryScope, type Action } from './auth';
import { MANIFEST_ACCEPT } from './media-types';
import { MAX_MANIFEST_BYTES, parseManifest, type ParsedManifest } from './manifest';
import { formatReference, manifestSelector, type ImageReference } from './reference';
import { Transport, type HttpRequest, type HttpResponse, type TransportOptions } from './transport';

export interface RegistryClientOptions extends RegistryConfigOptions, TransportOptions {
  /** Already loaded settings; otherwise registries.toml and Docker's config are read on first use. */
  config?: RegistryConfig;
}

export interface FetchedManifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
  parsed: ParsedManifest;
  /** The Content-Type the registry sent, without parameters (undefined when it sent none). */
  contentType?: string;
}

/** The repository a request concerns; a full ImageReference fits. */
export interface RepositoryRef {
  registry: string;
  repository: string;
}

interface ApiRequest {
  method: HttpRequest['method'];
  /** Absolute URL; or the API kind + reference, resolved against the endpoint. */
  url?: string;
  kind?: ApiKind;
  reference?: string;
  headers?: Record<string, string>;
  body?: HttpRequest['body'];
  actions?: Action[];
  /** Further repositories the token must cover (pull), e.g. the source of a cross-repository mount. */
  alsoPull?: string[];
  signal?: AbortSignal;
}

/** Registry error documents are a line or two of JSON; past this, the text is not worth reading. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The registry's own error text ({"errors":[{code,message}]}), for messages. */
export async function readRegistryError(res: HttpResponse): Promise<{ code?: string; message?: string }> {
  try {
    const bytes = await readBounded(res.body, MAX_ERROR_BODY_BYTES);
    if (!bytes) return {};
    const doc = JSON.parse(bytes.toString('utf8')) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    const first = doc.errors?.[0];
    return {
      code: typeof first?.code === 'string' ? first.code : undefined,
      message: typeof first?.message === 'string' ? first.message : undefined,
    };
  } catch {
    return {};
  }
}

export class RegistryClient {
  readonly transport: Transport;
  private configValue?: RegistryConfig;
  private authValue?: Authenticator;
  private readonly pinged = new Map<string, Promise<void>>();

  constructor(private readonly options: RegistryClientOptions = {}) {
    this.transport = new Transport(options);
    this.configValue = options.config;
  }

  /** Loaded lazily so that store-only operations never fail on a broken registries.toml. */
  get config(): RegistryConfig {
    this.configValue ??= RegistryConfig.load(this.options);
    return this.configValue;
  }

  private get auth(): Authenticator {
    this.authValue ??= new Authenticator(this.transport, this.config);
    return this.authValue;
  }

  endpoint(registry: string): Endpoint {
    return resolveEndpoint(registry, this.config.settings(registry));
  }

  /** GET /v2/: checks that a registry answers and learns how it wants to be authenticated. */
  async ping(registry: string, signal?: AbortSignal): Promise<{ auth: 'none' | 'basic' | 'bearer' }> {
    const endpoint = this.endpoint(registry);
    const res = await this.transport.send({ method: 'GET', url: `${endpoint.origin}/v2/`, signal });
    await res.body.dump().catch(() => {});
    if (res.status !== 200 && res.status !== 401) {
      throw new RegistryError(
        `${endpoint.address} does not look like a registry: GET /v2/ answered HTTP ${res.status}`,
        res.status,
        undefined,
        {
          remedy: 'check the registry host and port',
        },
      );
    }
    this.auth.learn(endpoint, res.status, res.headers);
    const challenge = this.auth.challengeOf(endpoint);
    return { auth: challenge ? (challenge.scheme === 'basic' ? 'basic' : 'bearer') : 'none' };
  }

  /** Pings once per registry per client, so later requests can authenticate up front. */
  private ensurePinged(registry: string, signal?: AbortSignal): Promise<void> {
    let p = this.pinged.get(registry);
    if (!p) {
      p = this.ping(registry, signal).then(() => undefined);
      p.catch(() => this.pinged.delete(registry));
      this.pinged.set(registry, p);
    }
    return p;
  }

  /**
   * One authenticated API call. Authorization is sent only to the registry's own origin, never
   * along a redirect to another host (blob storage).
   */
  async request(repo: RepositoryRef, req: ApiRequest): Promise<HttpResponse> {
    const endpoint = this.endpoint(repo.registry);
    await this.ensurePinged(repo.registry, req.signal);
    const scopes = [
      repositoryScope(repo.repository, req.actions ?? ['pull']),
      ...(req.alsoPull ?? []).map((r) => repositoryScope(r, ['pull'])),
    ];
    let url = req.url ?? apiUrl(endpoint, repo.repository, req.kind ?? 'manifests', req.reference);
    let authorization = await this.auth.header(endpoint, scopes, req.signal);
    let reauthenticated = false;
    for (let hop = 0; ;) {
      const sameOrigin = new URL(url).origin === endpoint.origin;
      const headers = { ...req.headers };
      if (authorization && sameOrigin) headers.authorization = authorization;
      const res = await this.transport.send({ method: req.method, url, headers, body: req.body, signal: req.signal });
      if (res.status === 401 && sameOrigin) {
        await res.body.dump().catch(() => {});
        if (reauthenticated) {
          this.auth.forget(endpoint, scopes);
          throw this.auth.failure(endpoint);
        }
        reauthenticated = true;
        authorization = await this.auth.reauthenticate(endpoint, scopes, res.headers, req.signal);
        continue;
      }
      if (REDIRECTS.has(res.status) && (req.method === 'GET' || req.method === 'HEAD')) {
        const location = header(res.headers, 'location');
        await res.body.dump().catch(() => {});
        if (!location || ++hop > MAX_REDIRECTS)
          throw new RegistryError(`too many or broken redirects from ${endpoint.address}`, res.status);
        url = new URL(location, url).toString();
        continue;
      }
      if (res.status === 403) {
        const err = await readRegistryError(res);
        throw new RegistryAuthError(endpoint.registry, 'denied', err.message ?? `to ${repo.repository}`);
      }
      return res;
    }
  }

  /** Fetches and verifies a manifest: by digest it must hash to that digest; by tag we compute it. */
  async getManifest(
    ref: ImageReference,
    options: { signal?: AbortSignal; selector?: string; accept?: string } = {},
  ): Promise<FetchedManifest> {
    const selector = options.selector ?? manifestSelector(ref);
    const res = await this.request(ref, {
      method: 'GET',
      kind: 'manifests',
      reference: selector,
      headers: { accept: options.accept ?? MANIFEST_ACCEPT },
      signal: options.signal,
    });
    const shown =
      selector === manifestSelector(ref) ? formatReference(ref) : `${ref.registry}/${ref.repository}@${selector}`;
    if (res.status === 404) {
      const err = await readRegistryError(res);
      throw new ImageNotFoundError(`image ${shown} not found`, {
        remedy:
          err.code === 'NAME_UNKNOWN'
            ? 'check the repository name'
            : 'check the tag or digest, and the repository name',
      });
    }
    if (res.status !== 200) throw await this.unexpected(res, `fetching manifest of ${shown}`);
    // Checked before reading when the registry says, and while reading in any case.
    const tooLarge = (): RegistryError =>
      new RegistryError(`manifest of ${shown} is larger than ${MAX_MANIFEST_BYTES} bytes`, res.status, undefined, {
        remedy: `${new URL(res.url).host} did not send an image manifest; check the reference, and the registry`,
      });
    if (Number(header(res.headers, 'content-length') ?? '0') > MAX_MANIFEST_BYTES) {
      await res.body.dump().catch(() => {});
      throw tooLarge();
    }
    const bytes = await readBounded(res.body, MAX_MANIFEST_BYTES);
    if (!bytes) throw tooLarge();
    const digest = sha256Digest(bytes);
    if (selector.startsWith('sha256:') && digest !== selector)
      throw new DigestMismatchError(selector, digest, `manifest of ${shown}`);
    const contentType = header(res.headers, 'content-type')?.split(';')[0].trim() || undefined;
    const parsed = parseManifest(bytes, contentType);
    const mediaType = parsed.kind === 'index' ? parsed.index.mediaType : parsed.manifest.mediaType;
    return { digest, mediaType, bytes, parsed, contentType };
  }

  /** Opens a blob's body, from `offset` when resuming. The caller verifies what it reads. */
  async openBlob(
    repo: RepositoryRef,
    digest: string,
    options: { offset?: number; signal?: AbortSignal } = {},
  ): Promise<HttpResponse> {
    const headers: Record<string, string> = {};
    if (options.offset) headers.range = `bytes=${options.offset}-`;
    const res = await this.request(repo, {
      method: 'GET',
      kind: 'blobs',
      reference: digest,
      headers,
      signal: options.signal,
    });
    if (res.status === 404) {
      await res.body.dump().catch(() => {});
      throw new RegistryError(`blob ${digest} not found in ${repo.registry}/${repo.repository}`, 404, 'BLOB_UNKNOWN', {
        remedy: 'the image is incomplete on the registry; ask its publisher to push it again',
      });
    }
    if (res.status === 416 && options.offset) return res;
    if (res.status !== 200 && res.status !== 206) throw await this.unexpected(res, `fetching blob ${digest}`);
    return res;
  }

  async blobExists(repo: RepositoryRef, digest: string, signal?: AbortSignal): Promise<boolean> {
    const res = await this.request(repo, {
      method: 'HEAD',
      kind: 'blobs',
      reference: digest,
      signal,
      actions: ['pull', 'push'],
    });
    await res.body.dump().catch(() => {});
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await this.unexpected(res, `checking blob ${digest}`);
  }

  /** An error for an answer the protocol does not allow; 5xx that survived the retries stay retryable. */
  async unexpected(res: HttpResponse, what: string): Promise<RegistryError> {
    const err = await readRegistryError(res);
    const address = new URL(res.url).host;
    const message = `${what}: ${address} answered HTTP ${res.status}${err.message ? ` (${err.message})` : ''}`;
    return res.status >= 500 || res.status === 429
      ? new RetryableError(message, res.status, err.code)
      : new RegistryError(message, res.status, err.code);
  }

  async close(): Promise<void> {
    await this.transport.close();
  }
}
