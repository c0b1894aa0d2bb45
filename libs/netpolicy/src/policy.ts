// Egress policy: which host destinations the guest may reach, and which names its DNS may
// resolve. Mirrors the reference: no allow list = full outbound (--net); --allow-cidr and
// --allow-host together allow the union; link-local (cloud metadata) is denied whatever the
// lists say.
import net from 'node:net';
import { parseCidr, type Cidr } from '@smolvm/config';
import type { ResolvedAddress, UpstreamResolver } from './resolver';

export interface PolicyInput {
  /** Hostnames (lowercase, no trailing dot). Non-empty: DNS answers only these names. */
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
}

// Never reachable, whatever the allow lists say: link-local (cloud metadata at 169.254.169.254),
// "this network", multicast and reserved/broadcast.
const ALWAYS_DENIED: Array<[string, number, 'ipv4' | 'ipv6', string]> = [
  ['169.254.0.0', 16, 'ipv4', 'link-local addresses (169.254.0.0/16) are always denied'],
  ['fe80::', 10, 'ipv6', 'link-local addresses (fe80::/10) are always denied'],
  ['0.0.0.0', 8, 'ipv4', '0.0.0.0/8 is not a destination'],
  ['224.0.0.0', 4, 'ipv4', 'multicast is not relayed'],
  ['240.0.0.0', 4, 'ipv4', 'reserved and broadcast addresses are not relayed'],
  ['ff00::', 8, 'ipv6', 'multicast is not relayed'],
];

const MAX_LEARNED = 4096;

export class EgressPolicy {
  /** No allow list: everything but the always-denied ranges. */
  readonly unrestricted: boolean;
  /** DNS answers only allowed names. */
  readonly filtersDns: boolean;
  private readonly hosts: Set<string>;
  private readonly cidrs = new net.BlockList();
  private readonly denied: Array<{ list: net.BlockList; reason: string }>;
  /** Addresses of allowed hosts resolved at start: allowed for the VM's life. */
  private readonly pinned = new Set<string>();
  /** Addresses seen in DNS answers for allowed names, until their TTL runs out. */
  private readonly learned = new Map<string, number>();
  private readonly now: () => number;
  private readonly minLearnedTtl: number;

  constructor(input: PolicyInput, options: PolicyOptions = {}) {
    this.hosts = new Set((input.allowHosts ?? []).map((h) => h.toLowerCase().replace(/\.$/, '')));
    const cidrs = (input.allowCidrs ?? []).map((c) => (typeof c === 'string' ? parseCidr(c) : c));
    for (const c of cidrs) this.cidrs.addSubnet(c.address, c.prefix, net.isIPv6(c.address) ? 'ipv6' : 'ipv4');
    this.unrestricted = this.hosts.size === 0 && cidrs.length === 0;
    this.filtersDns = this.hosts.size > 0;
    this.denied = ALWAYS_DENIED.map(([address, prefix, type, reason]) => {
      const list = new net.BlockList();
      list.addSubnet(address, prefix, type);
      return { list, reason };
    });
    this.now = options.now ?? Date.now;
    this.minLearnedTtl = options.minLearnedTtl ?? 10;
  }

  /** Builds the policy and resolves the allowed hosts (their addresses stay allowed). */
  static async create(input: PolicyInput, resolver: UpstreamResolver, options: PolicyOptions = {}): Promise<EgressPolicy> {
    const policy = new EgressPolicy(input, options);
    await Promise.all(
      [...policy.hosts].map(async (host) => {
        try {
          const found = await resolver.resolve4(host);
          if (found.length === 0) options.onWarning?.(`allowed host ${host} has no IPv4 address yet`);
          for (const a of found) policy.pinned.add(a.address);
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
    return !this.filtersDns || this.hosts.has(name.toLowerCase().replace(/\.$/, ''));
  }

  /** Records the addresses of an answer for an allowed name, for their TTL. */
  learn(answers: readonly ResolvedAddress[]): void {
    const now = this.now();
    if (this.learned.size + answers.length > MAX_LEARNED) {
      for (const [address, expiry] of this.learned) if (expiry <= now) this.learned.delete(address);
    }
    for (const a of answers) {
      if (this.learned.size >= MAX_LEARNED && !this.learned.has(a.address)) break;
      const expiry = now + Math.max(a.ttl, this.minLearnedTtl) * 1000;
      if ((this.learned.get(a.address) ?? 0) < expiry) this.learned.set(a.address, expiry);
    }
  }

  /** May the guest reach this host address (IPv4 or IPv6 text)? */
  check(address: string): Verdict {
    const type = net.isIPv6(address) ? 'ipv6' : 'ipv4';
    for (const d of this.denied) if (d.list.check(address, type)) return { allowed: false, reason: d.reason };
    if (this.unrestricted) return { allowed: true };
    if (this.cidrs.check(address, type)) return { allowed: true };
    if (this.pinned.has(address)) return { allowed: true };
    const expiry = this.learned.get(address);
    if (expiry !== undefined) {
      if (expiry > this.now()) return { allowed: true };
      this.learned.delete(address);
      return { allowed: false, reason: 'the DNS answer that allowed this address has expired' };
    }
    return { allowed: false, reason: 'not in the allowed hosts or CIDRs' };
  }
}
