// Egress policy: which host destinations the guest may reach, and which names its DNS may
// resolve. Mirrors the reference: no allow list = full outbound (--net); --allow-cidr and
// --allow-host together allow the union; cloud metadata is denied whatever the lists say. With
// any allow list, DNS resolves only the allowed names, and an answer never opens the host's
// loopback or an internal network that no CIDR names.
import net from 'node:net';
import { parseCidr, type Cidr } from '@smolvm/config';
import type { ResolvedAddress, UpstreamResolver } from './resolver';

export interface PolicyInput {
  /**
   * Nothing leaves: every connection is refused and no name is resolved (what `machine run` does
   * with only -p, and the NIC of a VM being snapshotted). Excludes the allow lists.
   */
  denyAll?: boolean;
  /** Hostnames (lowercase, no trailing dot). With any allow list, DNS answers only these names. */
  allowHosts?: readonly string[];
  /** Networks, as text ("10.0.0.0/8", "::1") or as parsed by @smolvm/config. */
  allowCidrs?: ReadonlyArray<string | Pick<Cidr, 'address' | 'prefix'>>;
}

export type Verdict = { allowed: true } | { allowed: false; reason: string };

export interface PolicyOptions {
  /** Clock for learned-address expiry (tests). */
  now?: () => number;
  /** Called for allowed hosts that do not resolve at start (the VM starts anyway). */
  onWarning?: (message: string) => void;
  /** Shortest life of a learned address, in seconds: guests may use an answer a little late. */
  minLearnedTtl?: number;
  /** Longest life of a learned address, in seconds (default 300): a huge TTL must not keep it open. */
  maxLearnedTtl?: number;
  /** The guest's network (any address in it, and the prefix): never opened by a DNS answer. */
  guestNetwork?: { address: string; prefix: number };
}

// Never reachable, whatever the allow lists say: cloud metadata services (link-local on most
// clouds, but not all), "this network", multicast and reserved/broadcast.
const ALWAYS_DENIED: ReadonlyArray<[string, string]> = [
  ['169.254.0.0/16', 'link-local addresses (169.254.0.0/16, cloud metadata) are always denied'],
  ['fe80::/10', 'link-local addresses (fe80::/10, cloud metadata) are always denied'],
  ['100.100.100.200/32', 'a cloud metadata address (Alibaba Cloud) is always denied'],
  ['168.63.129.16/32', 'a cloud metadata address (Azure platform endpoint) is always denied'],
  ['192.0.0.192/32', 'a cloud metadata address (Oracle Cloud) is always denied'],
  ['fd00:ec2::254/128', 'a cloud metadata address (AWS, IPv6) is always denied'],
  ['fd20:ce::254/128', 'a cloud metadata address (Google Cloud, IPv6) is always denied'],
  ['fd00:42::42/128', 'a cloud metadata address (Scaleway, IPv6) is always denied'],
  ['0.0.0.0/8', '0.0.0.0/8 is not a destination'],
  ['224.0.0.0/4', 'multicast is not relayed'],
  ['240.0.0.0/4', 'reserved and broadcast addresses are not relayed'],
  ['ff00::/8', 'multicast is not relayed'],
];

// Reachable only through an explicit CIDR (--allow-cidr, --outbound-localhost-only): a name's
// owner, or whoever answers for it, must not be able to point the guest at the host or its
// networks (DNS rebinding). The guest network itself is added per gateway.
const INTERNAL: ReadonlyArray<[string, string]> = [
  ['127.0.0.0/8', 'loopback'],
  ['10.0.0.0/8', 'a private network'],
  ['172.16.0.0/12', 'a private network'],
  ['192.168.0.0/16', 'a private network'],
  ['100.64.0.0/10', 'carrier-grade NAT space'],
  ['192.0.0.0/24', 'IETF protocol assignments'],
  ['::1/128', 'loopback'],
  ['::/128', 'the unspecified address'],
  ['fc00::/7', 'a private (unique local) network'],
];

function blockList(ranges: ReadonlyArray<string | Pick<Cidr, 'address' | 'prefix'>>): net.BlockList {
  const list = new net.BlockList();
  for (const r of ranges) {
    const c = typeof r === 'string' ? parseCidr(r) : r;
    list.addSubnet(c.address, c.prefix, net.isIPv6(c.address) ? 'ipv6' : 'ipv4');
  }
  return list;
}

const family = (address: string): 'ipv4' | 'ipv6' => (net.isIPv6(address) ? 'ipv6' : 'ipv4');

/** How far a CNAME chain is followed before the answer is refused. */
const MAX_ALIASES = 8;

const MAX_LEARNED = 4096;

/** An address of an answer that the policy would not open, and why. */
export interface DroppedAddress {
  address: string;
  reason: string;
}

export class EgressPolicy {
  /** No allow list: everything but the always-denied ranges. */
  readonly unrestricted: boolean;
  /** Nothing at all (PolicyInput.denyAll). */
  readonly denyAll: boolean;
  /** DNS answers only allowed names (any allow list; with CIDRs alone, no name at all). */
  readonly filtersDns: boolean;
  private readonly hosts: Set<string>;
  private readonly cidrs: net.BlockList;
  private readonly denied: Array<{ list: net.BlockList; reason: string }>;
  private readonly internal: Array<{ list: net.BlockList; range: string; what: string }>;
  /** Addresses of allowed hosts resolved at start: allowed for the VM's life. */
  private readonly pinned = new Set<string>();
  /** Addresses seen in DNS answers for allowed names, until their TTL runs out. */
  private readonly learned = new Map<string, number>();
  private readonly now: () => number;
  private readonly minLearnedTtl: number;
  private readonly maxLearnedTtl: number;

  constructor(input: PolicyInput, options: PolicyOptions = {}) {
    this.hosts = new Set((input.allowHosts ?? []).map((h) => h.toLowerCase().replace(/\.$/, '')));
    const cidrs = input.allowCidrs ?? [];
    if (input.denyAll && (this.hosts.size > 0 || cidrs.length > 0))
      throw new Error('a deny-all policy has no allow lists');
    this.denyAll = input.denyAll === true;
    this.cidrs = blockList(cidrs);
    this.unrestricted = !this.denyAll && this.hosts.size === 0 && cidrs.length === 0;
    this.filtersDns = !this.unrestricted;
    this.denied = ALWAYS_DENIED.map(([range, reason]) => ({ list: blockList([range]), reason }));
    this.internal = INTERNAL.map(([range, what]) => ({ list: blockList([range]), range, what }));
    const own = options.guestNetwork;
    if (own)
      this.internal.push({
        list: blockList([own]),
        range: `${own.address}/${own.prefix}`,
        what: "the guest's own network",
      });
    this.now = options.now ?? Date.now;
    this.minLearnedTtl = options.minLearnedTtl ?? 10;
    this.maxLearnedTtl = Math.max(this.minLearnedTtl, options.maxLearnedTtl ?? 300);
  }

  /** Builds the policy and resolves the allowed hosts (their addresses stay allowed). */
  static async create(
    input: PolicyInput,
    resolver: UpstreamResolver,
    options: PolicyOptions = {},
  ): Promise<EgressPolicy> {
    const policy = new EgressPolicy(input, options);
    await Promise.all(
      [...policy.hosts].map(async (host) => {
        try {
          const found = await policy.lookup(host, resolver);
          if ('denied' in found) {
            options.onWarning?.(`allowed host ${host} is not reachable: ${found.denied}`);
            return;
          }
          if (found.length === 0) options.onWarning?.(`allowed host ${host} has no IPv4 address yet`);
          for (const a of found) {
            const refused = policy.refusesFromName(a.address);
            if (refused) options.onWarning?.(`allowed host ${host} resolves to ${a.address}, not opened: ${refused}`);
            else policy.pinned.add(a.address);
          }
        } catch (err) {
          options.onWarning?.(`allowed host ${host} did not resolve at start: ${(err as Error).message}`);
        }
      }),
    );
    return policy;
  }

  get allowedHosts(): string[] {
    return [...this.hosts];
  }

  allowsName(name: string): boolean {
    return this.unrestricted || this.hosts.has(name.toLowerCase().replace(/\.$/, ''));
  }

  /** Why the DNS server does not answer `name` (for the denial log). */
  nameDeniedReason(name: string): string {
    if (this.denyAll) return 'this VM has no outbound network, so no name is resolved';
    return this.hosts.size === 0
      ? 'the policy allows addresses only (no --allow-host), so no name is resolved'
      : `not an allowed host (allow it with --allow-host ${name})`;
  }

  /**
   * The A records of an allowed name. With a name filter, aliases (CNAMEs) are followed only
   * through allowed names: otherwise whoever controls the alias target decides the addresses.
   * Resolver errors pass through.
   */
  async lookup(name: string, resolver: UpstreamResolver): Promise<ResolvedAddress[] | { denied: string }> {
    if (!this.filtersDns || !resolver.cname) return resolver.resolve4(name);
    const [addresses, firstAlias] = await Promise.all([resolver.resolve4(name), resolver.cname(name)]);
    let alias = firstAlias;
    for (let hops = 0; alias !== undefined; hops++) {
      if (!this.allowsName(alias))
        return {
          denied: `${name} is an alias of ${alias}, which is not an allowed host (allow it with --allow-host ${alias})`,
        };
      if (hops >= MAX_ALIASES) return { denied: `${name} is an alias more than ${MAX_ALIASES} names deep` };
      alias = await resolver.cname(alias);
    }
    return addresses;
  }

  /**
   * Screens an answer for an allowed name: internal addresses (unless an explicit CIDR covers
   * them) and always-denied ones are dropped; the rest are learned with their TTL bounded, and
   * returned with that TTL so the guest never holds an answer longer than the policy honours it.
   */
  learn(answers: readonly ResolvedAddress[]): { kept: ResolvedAddress[]; dropped: DroppedAddress[] } {
    const now = this.now();
    const kept: ResolvedAddress[] = [];
    const dropped: DroppedAddress[] = [];
    if (this.learned.size + answers.length > MAX_LEARNED) {
      for (const [address, expiry] of this.learned) if (expiry <= now) this.learned.delete(address);
    }
    for (const a of answers) {
      const refused = this.refusesFromName(a.address);
      if (refused) {
        dropped.push({ address: a.address, reason: refused });
        continue;
      }
      const ttl = Math.min(Math.max(0, a.ttl), this.maxLearnedTtl);
      kept.push({ address: a.address, ttl });
      if (this.learned.size >= MAX_LEARNED && !this.learned.has(a.address)) continue;
      const expiry = now + Math.max(ttl, this.minLearnedTtl) * 1000;
      if ((this.learned.get(a.address) ?? 0) < expiry) this.learned.set(a.address, expiry);
    }
    return { kept, dropped };
  }

  /** Why an address from a DNS answer may not be opened by it, or undefined when it may. */
  private refusesFromName(address: string): string | undefined {
    const type = family(address);
    for (const d of this.denied) if (d.list.check(address, type)) return d.reason;
    if (this.cidrs.check(address, type)) return undefined;
    for (const r of this.internal) {
      if (r.list.check(address, type)) {
        return `${r.what} (${r.range}) is not opened by a DNS answer; allow it explicitly with --allow-cidr ${address}/${type === 'ipv4' ? 32 : 128}`;
      }
    }
    return undefined;
  }

  /** May the guest reach this host address (IPv4 or IPv6 text)? */
  check(address: string): Verdict {
    const type = family(address);
    for (const d of this.denied) if (d.list.check(address, type)) return { allowed: false, reason: d.reason };
    if (this.unrestricted) return { allowed: true };
    if (this.cidrs.check(address, type)) return { allowed: true };
    // Never internal addresses (refusesFromName): a name cannot open the host or its networks.
    if (this.pinned.has(address)) return { allowed: true };
    const expiry = this.learned.get(address);
    if (expiry !== undefined) {
      if (expiry > this.now()) return { allowed: true };
      this.learned.delete(address);
      return { allowed: false, reason: 'the DNS answer that allowed this address has expired' };
    }
    return {
      allowed: false,
      reason: this.denyAll ? 'this VM has no outbound network' : 'not in the allowed hosts or CIDRs',
    };
  }
}
