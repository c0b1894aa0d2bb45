// Where the gateway's DNS server and the allow-host list get their answers. Injectable, so tests
// answer from a map or a fake server on loopback and never reach the outside.
import dns from 'node:dns';
import net from 'node:net';

export interface ResolvedAddress {
  /** IPv4 address. */
  address: string;
  /** Seconds the answer may be used. */
  ttl: number;
}

export interface UpstreamResolver {
  /**
   * The A records of `name`. Resolves [] when the name exists without IPv4 addresses; rejects
   * with an error whose `code` is 'ENOTFOUND' when the name does not exist (the guest gets
   * NXDOMAIN), and with anything else on failure (the guest gets SERVFAIL).
   */
  resolve4(name: string): Promise<ResolvedAddress[]>;
  /**
   * The name `name` is an alias of (its CNAME), or undefined when it is none or does not exist.
   * The policy walks the chain with it so an allowed name cannot hand its addresses to another.
   * A resolver whose answers never go through aliases (a fixed table) may leave it out.
   */
  cname?(name: string): Promise<string | undefined>;
}

export interface HostResolverOptions {
  /** Nameservers as "ip" or "ip:port". Default: the host's (/etc/resolv.conf). */
  servers?: string[];
  /** Per-try timeout; c-ares tries each server a few times. */
  timeoutMs?: number;
  /** TTL given to names only /etc/hosts knows (lookups there carry none). */
  hostsTtl?: number;
}

const notFound = (name: string): Error => Object.assign(new Error(`${name}: no such host`), { code: 'ENOTFOUND' });

/**
 * The host's resolver: DNS through c-ares (with TTLs), falling back to getaddrinfo when no
 * servers are given, so names from /etc/hosts resolve for the guest as they do on the host.
 */
export function hostResolver(options: HostResolverOptions = {}): UpstreamResolver {
  const resolver = new dns.promises.Resolver({ timeout: options.timeoutMs ?? 2000, tries: 2 });
  if (options.servers) resolver.setServers(options.servers);
  return {
    async resolve4(name: string): Promise<ResolvedAddress[]> {
      try {
        return await resolver.resolve4(name, { ttl: true });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (options.servers) {
          if (code === 'ENODATA') return [];
          throw code === 'ENOTFOUND' ? notFound(name) : err;
        }
        try {
          const found = await dns.promises.lookup(name, { family: 4, all: true });
          return found.map((f) => ({ address: f.address, ttl: options.hostsTtl ?? 60 }));
        } catch {
          if (code === 'ENODATA') return [];
          throw code === 'ENOTFOUND' ? notFound(name) : err;
        }
      }
    },
    async cname(name: string): Promise<string | undefined> {
      try {
        return (await resolver.resolveCname(name))[0]?.toLowerCase().replace(/\.$/, '');
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // No alias, or no such name (resolve4 decides what the guest hears then).
        if (code === 'ENODATA' || code === 'ENOTFOUND') return undefined;
        throw err;
      }
    },
  };
}

/** A fixed table of names (tests, or a caller that pins addresses). */
export function staticResolver(table: Record<string, Array<string | ResolvedAddress>>, ttl = 300): UpstreamResolver {
  const entries = new Map(Object.entries(table).map(([k, v]) => [k.toLowerCase(), v]));
  return {
    async resolve4(name: string): Promise<ResolvedAddress[]> {
      const found = entries.get(name.toLowerCase());
      if (!found) throw notFound(name);
      return found.map((a) => (typeof a === 'string' ? { address: a, ttl } : a)).filter((a) => net.isIPv4(a.address));
    },
  };
}
