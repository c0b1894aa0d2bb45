// HTTP for the registry client (undici): one keep-alive agent, retries with backoff for the
// failures that are worth retrying, and connection errors that name the host:port.
import type { IncomingHttpHeaders } from 'node:http';
import tls from 'node:tls';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import { extraCaCerts } from '@smolvm/common';
import { RegistryError, RetryableError } from './errors';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface HttpRequest {
  method: HttpMethod;
  url: string;
  headers?: Record<string, string>;
  /** A Buffer can be resent on retry; a stream factory is called once per attempt. */
  body?: Buffer | (() => Readable);
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Dispatcher.ResponseData['body'];
  url: string;
}

export interface RetryPolicy {
  /** Attempts after the first. */
  retries: number;
  /** First backoff; doubles per attempt, with jitter. */
  backoffMs: number;
  /** Cap on one backoff, including a server's Retry-After. */
  maxBackoffMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { retries: 4, backoffMs: 250, maxBackoffMs: 10_000 };

const RETRY_STATUS = new Set([429, 500, 502, 503, 504]);
/** Resets and timeouts pass; refused connections and DNS failures are configuration, not luck. */
const RETRY_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

export function errorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

export function isRetryableNetworkError(err: unknown): boolean {
  if (err instanceof RetryableError) return true;
  const code = errorCode(err);
  return code !== undefined && RETRY_CODES.has(code);
}

export function addressOf(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || (u.protocol === 'https:' ? 443 : 80)}`;
}

/** Turns a low-level connection failure into an error that says where and what to check. */
export function describeNetworkError(err: unknown, url: string): RegistryError {
  const address = addressOf(url);
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  switch (code) {
    case 'ECONNREFUSED':
      return new RegistryError(`cannot connect to registry ${address}: connection refused`, undefined, code, {
        remedy: 'check that the registry is running and that host and port are right',
        cause: err,
      });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new RegistryError(`cannot resolve registry host ${new URL(url).hostname}`, undefined, code, {
        remedy: 'check the registry name and your network or DNS settings',
        cause: err,
      });
    default:
      if (code?.startsWith('ERR_TLS') || code?.startsWith('ERR_SSL') || /certificate|SSL|TLS/i.test(message)) {
        return new RegistryError(`TLS connection to registry ${address} failed: ${message}`, undefined, code, {
          remedy: "if this registry serves plain HTTP, set insecure = true for it with 'smolvm config registries edit'",
          cause: err,
        });
      }
      return new RetryableError(`connection to registry ${address} failed: ${message}`, undefined, code, {
        remedy: 'check your network connection and retry',
        cause: err,
      });
  }
}

export function backoffDelay(policy: RetryPolicy, attempt: number, retryAfter?: string | string[]): number {
  const header = Array.isArray(retryAfter) ? retryAfter[0] : retryAfter;
  const seconds = header !== undefined ? Number(header) : NaN;
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, policy.maxBackoffMs);
  const base = policy.backoffMs * 2 ** attempt;
  return Math.min(base + Math.random() * base * 0.25, policy.maxBackoffMs);
}

export interface TransportOptions {
  retry?: Partial<RetryPolicy>;
  userAgent?: string;
  /** For tests and embedders; defaults to a private keep-alive Agent. */
  dispatcher?: Dispatcher;
}

// Evaluating undici costs ~30 ms of CLI start-up: only a request loads it, so the commands that
// construct an ImageService without reaching a registry (machine run without --image, ls) don't.
let undici: Promise<typeof import('undici')> | undefined;
function loadUndici(): Promise<typeof import('undici')> {
  return (undici ??= import('undici'));
}

/**
 * The smolvm executable starts node without NODE_EXTRA_CA_CERTS (see @smolvm/common ca-certs):
 * registry connections trust those certificates explicitly, on top of Node's bundled roots.
 */
function trustOptions(): { ca?: string[] } {
  const extra = extraCaCerts();
  return extra === undefined ? {} : { ca: [...tls.rootCertificates, extra] };
}

export class Transport {
  readonly retry: RetryPolicy;
  /** Created on the first request (see loadUndici); `close` before that has nothing to close. */
  private dispatcher: Dispatcher | undefined;
  private readonly ownsDispatcher: boolean;
  private closed = false;
  private readonly userAgent: string;

  constructor(options: TransportOptions = {}) {
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.userAgent = options.userAgent ?? 'smolvm';
    this.ownsDispatcher = options.dispatcher === undefined;
    this.dispatcher = options.dispatcher;
  }

  /** One attempt; network failures come back as typed errors (retryable or not). */
  async once(req: HttpRequest): Promise<HttpResponse> {
    const { Agent, request } = await loadUndici();
    if (!this.dispatcher) {
      // A late request after close must not leave a fresh keep-alive agent holding the process open.
      if (this.closed)
        throw new RegistryError(`request to ${addressOf(req.url)} after the registry connection was closed`);
      this.dispatcher = new Agent({
        connections: 16,
        connect: { timeout: 30_000, ...trustOptions() },
        headersTimeout: 60_000,
        bodyTimeout: 60_000,
        keepAliveTimeout: 10_000,
      });
    }
    const body = typeof req.body === 'function' ? req.body() : req.body;
    try {
      const res = await request(req.url, {
        method: req.method,
        headers: { 'user-agent': this.userAgent, ...req.headers },
        body,
        signal: req.signal,
        dispatcher: this.dispatcher,
      });
      return { status: res.statusCode, headers: res.headers, body: res.body, url: req.url };
    } catch (err) {
      if (req.signal?.aborted) throw err;
      throw describeNetworkError(err, req.url);
    }
  }

  /**
   * Sends with retries on 429/5xx and dropped connections. The last retryable status is returned
   * (not thrown) so the caller can report it with context.
   */
  async send(req: HttpRequest): Promise<HttpResponse> {
    for (let attempt = 0; ; attempt++) {
      let res: HttpResponse;
      try {
        res = await this.once(req);
      } catch (err) {
        if (attempt >= this.retry.retries || !isRetryableNetworkError(err) || req.signal?.aborted) throw err;
        await sleep(backoffDelay(this.retry, attempt), undefined, { signal: req.signal });
        continue;
      }
      if (!RETRY_STATUS.has(res.status) || attempt >= this.retry.retries) return res;
      await res.body.dump().catch(() => {});
      await sleep(backoffDelay(this.retry, attempt, res.headers['retry-after']), undefined, { signal: req.signal });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.ownsDispatcher && this.dispatcher) await this.dispatcher.close();
  }
}
