// Reference -> URL: which scheme, host and path a registry's API lives at.
import net from 'node:net';
import { UsageError } from '@smolvm/common';
import type { RegistrySettings } from './registries-file';

export interface Endpoint {
  /** The registry as written in references ("docker.io", "127.0.0.1:5000"). */
  registry: string;
  /** Origin of its API, e.g. "https://registry-1.docker.io" or "http://127.0.0.1:5000". */
  origin: string;
  /** host:port for messages, always with the port the connection uses. */
  address: string;
}

/** Splits "host:port", "[v6]:port" or a bare host. */
export function splitHostPort(registry: string): { hostname: string; port?: number } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(registry);
  if (v6) return { hostname: v6[1], port: v6[2] ? Number(v6[2]) : undefined };
  const colon = registry.lastIndexOf(':');
  if (colon > 0 && /^\d+$/.test(registry.slice(colon + 1))) {
    return { hostname: registry.slice(0, colon), port: Number(registry.slice(colon + 1)) };
  }
  return { hostname: registry };
}

/** 127.0.0.0/8, ::1 and localhost: like docker, these registries speak plain HTTP. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h);
  return false;
}

/** Docker Hub's API host is not the name people write. */
const API_HOSTS: Record<string, string> = { 'docker.io': 'registry-1.docker.io' };

export function resolveEndpoint(registry: string, settings: RegistrySettings = {}): Endpoint {
  const apiHost = API_HOSTS[registry] ?? registry;
  const { hostname, port } = splitHostPort(apiHost);
  if (hostname === '') throw new UsageError(`invalid registry '${registry}'`);
  const plain = settings.insecure === true || isLoopbackHost(hostname);
  const scheme = plain ? 'http' : 'https';
  const shownHost = net.isIPv6(hostname) ? `[${hostname}]` : hostname;
  const origin = `${scheme}://${shownHost}${port !== undefined ? `:${port}` : ''}`;
  return { registry, origin, address: `${shownHost}:${port ?? (plain ? 80 : 443)}` };
}

export type ApiKind = 'manifests' | 'blobs' | 'blobs/uploads' | 'tags/list';

export function apiUrl(endpoint: Endpoint, repository: string, kind: ApiKind, reference = ''): string {
  const tail =
    kind === 'blobs/uploads' ? '/' : reference ? `/${encodeURIComponent(reference).replace(/%3A/gi, ':')}` : '';
  return `${endpoint.origin}/v2/${repository}/${kind}${tail}`;
}
