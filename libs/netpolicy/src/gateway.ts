// The gateway: the guest's only neighbour on a point-to-point Ethernet. It answers ARP, DHCP,
// ICMP echo and DNS itself, terminates TCP and relays UDP to real host sockets when the policy
// allows, and opens TCP connections into the guest for port forwarding.
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { SmolvmError } from '@smolvm/common';
import { ByteBudget, PIECE_OVERHEAD } from './budget';
import { DhcpMessage, dhcpReply, parseDhcp } from './dhcp';
import { buildDnsResponse, DnsRcode, DnsType, parseDnsQuery, type DnsQuery } from './dns';
import { FrameDecoder, lengthPrefix } from './link';
import {
  BROADCAST_MAC,
  buildArp,
  buildIcmp,
  buildIpv4Frames,
  buildTcpFrame,
  buildUdp,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  formatMac,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  ipv4ToNumber,
  numberToIpv4,
  parseArp,
  parseEthernet,
  parseIcmp,
  parseIpv4,
  parseMac,
  parseTcp,
  parseUdp,
  TcpFlags,
  type Ipv4Packet,
  type Mac,
  type TcpHeaderFields,
  type TcpSegment,
} from './packets';
import type { EgressPolicy } from './policy';
import type { ResolvedAddress, UpstreamResolver } from './resolver';
import { TcpConnection, type TcpOptions } from './tcp';

/** Addresses of the guest's link. Defaults: DEFAULT_NETWORK. */
export interface GuestNetworkOptions {
  gateway?: string;
  guest?: string;
  prefix?: number;
  mtu?: number;
  /** The guest NIC's MAC (what the driver gives QEMU). */
  guestMac?: string;
}

/** What the guest needs to configure its interface statically (or what DHCP hands out). */
export interface GuestNetworkConfig {
  ip: string;
  prefix: number;
  netmask: string;
  gateway: string;
  /** Nameservers for the guest's resolv.conf: the gateway's DNS server. */
  dns: string[];
  mac: string;
  gatewayMac: string;
  mtu: number;
}

export const DEFAULT_NETWORK = {
  gateway: '192.168.127.1',
  guest: '192.168.127.2',
  prefix: 24,
  mtu: 1500,
  guestMac: '52:54:00:12:34:56',
  gatewayMac: '52:54:00:12:34:01',
} as const;

export interface GatewayLimits {
  maxTcpConnections: number;
  maxUdpFlows: number;
  udpIdleMs: number;
  /** Host connect attempts that take longer are answered with RST. */
  connectTimeoutMs: number;
  /** Per-connection buffers (bytes); with the limits above they bound the gateway's memory. */
  tcpReceiveBuffer: number;
  tcpSendBuffer: number;
  timeWaitMs: number;
  maxPendingDns: number;
  /**
   * Bytes queued towards the guest past which TCP stops sending and everything else the gateway
   * sends (ARP, ICMP, DNS, DHCP and UDP replies, RSTs for unknown connections) is dropped.
   */
  linkHighWater: number;
  /**
   * Hard caps on what is queued towards the guest (a stalled NIC): past them TCP frames are dropped too (and resent).
   */
  linkMaxBacklog: number;
  linkMaxFrames: number;
  /**
   * Caps shared by all TCP connections, in bytes plus PIECE_OVERHEAD per buffered piece: guest
   * data waiting for host sockets, out-of-order guest data, host data waiting for the guest's ACK.
   */
  tcpReceiveTotal: number;
  tcpOutOfOrderTotal: number;
  tcpSendTotal: number;
  /** Guest datagrams waiting for host sockets, all flows together (same accounting). */
  udpSendTotal: number;
}

export const DEFAULT_LIMITS: GatewayLimits = {
  maxTcpConnections: 4096,
  maxUdpFlows: 1024,
  udpIdleMs: 60_000,
  connectTimeoutMs: 30_000,
  tcpReceiveBuffer: 256 * 1024,
  tcpSendBuffer: 256 * 1024,
  timeWaitMs: 10_000,
  maxPendingDns: 256,
  linkHighWater: 1024 * 1024,
  linkMaxBacklog: 2 * 1024 * 1024,
  linkMaxFrames: 8192,
  tcpReceiveTotal: 16 * 1024 * 1024,
  tcpOutOfOrderTotal: 8 * 1024 * 1024,
  tcpSendTotal: 16 * 1024 * 1024,
  udpSendTotal: 4 * 1024 * 1024,
};

/** A connection or datagram the policy refused (for the machine's log). */
export interface DeniedAttempt {
  protocol: 'tcp' | 'udp' | 'dns';
  /** IP address, or the name for DNS. */
  destination: string;
  port?: number;
  reason: string;
}

/** The one wording of a denial, for `run --debug` and the machine log alike. */
export function formatDenial(d: DeniedAttempt): string {
  return `network: denied ${d.protocol} ${d.destination}${d.port !== undefined ? `:${d.port}` : ''} (${d.reason})`;
}

export interface GatewayStats {
  tcpConnections: number;
  udpFlows: number;
  /** Payload bytes held by the gateway: TCP send/receive/reassembly buffers, host-socket write queues. */
  bufferedBytes: number;
  /** Bytes waiting to be written to the guest link. */
  linkBacklog: number;
  framesIn: number;
  framesOut: number;
  /** Frames ignored as malformed, oversized or not for us. */
  framesDropped: number;
  /** Of those, frames longer than the MTU (+ Ethernet header). */
  framesOversize: number;
  /** Frames for the guest dropped because too much was queued towards it already. */
  framesOutDropped: number;
  /** Guest TCP data dropped unacknowledged because holding it would pass a cap (the guest resends). */
  segmentsDropped: number;
  /** Guest datagrams dropped because too much waits for host sockets already. */
  datagramsDropped: number;
  /** Connections refused (RST, or the host side reset) because maxTcpConnections were open. */
  connectionsRefused: number;
}

export interface GatewayInternals {
  policy: EgressPolicy;
  resolver: UpstreamResolver;
  network?: GuestNetworkOptions;
  limits?: Partial<GatewayLimits>;
  onDenied?: (attempt: DeniedAttempt) => void;
  onWarning?: (message: string) => void;
}

interface TcpFlow {
  key: string;
  conn: TcpConnection;
  socket?: net.Socket;
  /** The address the guest talks to (its view): destination, or the gateway for forwards. */
  remoteIp: number;
  /** Guest data delivered in this batch of frames, written to the socket at its end. */
  pending: Buffer[];
  pendingBytes: number;
  pendingCharge: number;
  /** Receive-budget charge of the pending data plus what the socket has not written yet. */
  backlog: number;
  /** The host socket is relayed (connected, or the forwarded connection established). */
  wired: boolean;
}

interface UdpFlow {
  socket: dgram.Socket;
  target: string;
  remoteIp: number;
  remotePort: number;
  guestPort: number;
  lastActive: number;
  /** Send-budget charge of datagrams the socket has not sent yet. */
  inFlight: number;
}

const LOOPBACK = '127.0.0.1';
/** Host sockets read into this and the gateway copies what it keeps (reads are synchronous). */
const HOST_READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
const FORWARD_PORTS = { first: 49152, last: 65535 };

export class Gateway {
  readonly guestConfig: GuestNetworkConfig;
  private readonly policy: EgressPolicy;
  private readonly resolver: UpstreamResolver;
  private readonly limits: GatewayLimits;
  private readonly onDenied?: (attempt: DeniedAttempt) => void;
  private readonly onWarning?: (message: string) => void;

  private readonly gatewayIp: number;
  private readonly guestIp: number;
  private readonly netmask: number;
  private readonly gatewayMac: Mac;
  private guestMac: Mac;
  private readonly mtu: number;
  private readonly tcpOptions: Partial<TcpOptions>;

  private link?: Duplex;
  private server?: net.Server;
  private decoder = new FrameDecoder();
  private congested = false;
  /** Frames waiting for the link (not yet written) and the bytes of the write in flight. */
  private outQueue: Buffer[] = [];
  private outBytes = 0;
  private outInFlight = 0;
  private outWriting = false;
  private outScheduled = false;
  private readonly budgets: { receive: ByteBudget; outOfOrder: ByteBudget; send: ByteBudget; udp: ByteBudget };
  /** All host reads stopped: the send budget is exhausted. */
  private hostReadsPaused = false;
  private readonly tcp = new Map<string, TcpFlow>();
  private readonly udp = new Map<string, UdpFlow>();
  private readonly touched = new Set<TcpFlow>();
  private readonly dnsCache = new Map<
    string,
    { expiry: number; result: ResolvedAddress[] | 'nxdomain' | { denied: string } }
  >();
  private pendingDns = 0;
  private nextForwardPort = FORWARD_PORTS.first;
  private sweepTimer?: NodeJS.Timeout;
  private closed = false;
  private counters = {
    framesIn: 0,
    framesOut: 0,
    framesDropped: 0,
    framesOversize: 0,
    framesOutDropped: 0,
    segmentsDropped: 0,
    datagramsDropped: 0,
    connectionsRefused: 0,
  };

  constructor(internals: GatewayInternals) {
    this.policy = internals.policy;
    this.resolver = internals.resolver;
    this.limits = { ...DEFAULT_LIMITS, ...internals.limits };
    this.onDenied = internals.onDenied;
    this.onWarning = internals.onWarning;
    const n = { ...DEFAULT_NETWORK, ...internals.network };
    this.gatewayIp = ipv4ToNumber(n.gateway);
    this.guestIp = ipv4ToNumber(n.guest);
    this.netmask = n.prefix === 0 ? 0 : (0xffffffff << (32 - n.prefix)) >>> 0;
    if ((this.gatewayIp & this.netmask) !== (this.guestIp & this.netmask) || this.gatewayIp === this.guestIp) {
      throw new SmolvmError(
        `guest ${n.guest} and gateway ${n.gateway} are not distinct addresses of one /${n.prefix} network`,
        {
          remedy: 'choose a guest and a gateway address in the same subnet',
        },
      );
    }
    this.gatewayMac = parseMac(DEFAULT_NETWORK.gatewayMac);
    this.guestMac = parseMac(n.guestMac);
    this.mtu = n.mtu;
    const l = this.limits;
    this.budgets = {
      receive: new ByteBudget(l.tcpReceiveTotal),
      outOfOrder: new ByteBudget(l.tcpOutOfOrderTotal),
      send: new ByteBudget(l.tcpSendTotal),
      udp: new ByteBudget(l.udpSendTotal),
    };
    this.tcpOptions = {
      mss: n.mtu - 40,
      receiveBuffer: this.limits.tcpReceiveBuffer,
      sendBuffer: this.limits.tcpSendBuffer,
      timeWaitMs: this.limits.timeWaitMs,
      receiveBudget: this.budgets.receive,
      outOfOrderBudget: this.budgets.outOfOrder,
      sendBudget: this.budgets.send,
    };
    this.guestConfig = {
      ip: n.guest,
      prefix: n.prefix,
      netmask: numberToIpv4(this.netmask),
      gateway: n.gateway,
      dns: [n.gateway],
      mac: formatMac(this.guestMac),
      gatewayMac: formatMac(this.gatewayMac),
      mtu: n.mtu,
    };
    this.sweepTimer = setInterval(() => this.sweepUdp(), Math.max(50, this.limits.udpIdleMs / 4));
    this.sweepTimer.unref();
  }

  // ---- link ----

  /** Starts serving a link (QEMU's stream connection, or a test adapter). One at a time. */
  attach(link: Duplex): void {
    if (this.closed) throw new SmolvmError('the network gateway is closed');
    if (this.link) throw new SmolvmError('the network gateway already has a link');
    this.link = link;
    // Nothing longer than the MTU is ever assembled: such frames are skipped as they stream by.
    this.decoder = new FrameDecoder(this.mtu + 14);
    this.outQueue = [];
    this.outBytes = 0;
    this.outInFlight = 0;
    this.outWriting = false;
    this.congested = false;
    link.on('data', (chunk: Buffer) => this.onChunk(chunk));
    link.on('error', (err) => this.onWarning?.(`network link: ${err.message}`));
    link.on('close', () => {
      if (this.link === link) this.link = undefined;
    });
  }

  /**
   * Listens on a unix socket for QEMU (`-netdev stream,server=off,addr.type=unix`) and serves the
   * first connection; later ones are refused.
   */
  async listen(socketPath: string): Promise<void> {
    fs.rmSync(socketPath, { force: true });
    const server = net.createServer({ allowHalfOpen: false }, (socket) => {
      if (this.link || this.closed) {
        socket.destroy();
        return;
      }
      server.close();
      this.attach(socket);
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(
          new SmolvmError(`cannot listen on ${socketPath} for the VM's network: ${err.message}`, {
            cause: err,
            remedy: 'check that the machine directory is writable',
          }),
        ),
      );
      server.listen(socketPath, () => resolve());
    });
  }

  stats(): GatewayStats {
    let buffered = 0;
    for (const f of this.tcp.values()) buffered += f.conn.bufferedBytes + (f.socket?.writableLength ?? 0);
    return {
      tcpConnections: this.tcp.size,
      udpFlows: this.udp.size,
      bufferedBytes: buffered,
      linkBacklog: this.outBytes + (this.link?.writableLength ?? 0),
      ...this.counters,
    };
  }

  /** Tears everything down: host sockets, flows, the link and the listener. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    for (const f of [...this.tcp.values()]) {
      f.conn.destroy();
      f.socket?.destroy();
    }
    this.tcp.clear();
    for (const f of this.udp.values()) f.socket.close();
    this.udp.clear();
    this.server?.close();
    const link = this.link;
    this.link = undefined;
    if (link && !link.destroyed) {
      await new Promise<void>((resolve) => {
        link.once('close', () => resolve());
        link.destroy();
      });
    }
  }

  private onChunk(chunk: Buffer): void {
    let frames: Buffer[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.onWarning?.(`network link closed: ${(err as Error).message}`);
      this.link?.destroy();
      return;
    }
    this.counters.framesDropped += this.decoder.dropped;
    this.counters.framesOversize += this.decoder.oversize;
    this.decoder.dropped = 0;
    this.decoder.oversize = 0;
    for (const frame of frames) {
      this.counters.framesIn++;
      try {
        if (!this.handleFrame(frame)) this.counters.framesDropped++;
      } catch (err) {
        // A bug must cost one frame, not the VM's network.
        this.counters.framesDropped++;
        this.onWarning?.(`network gateway: frame dropped after an internal error: ${(err as Error).message}`);
      }
    }
    // One ACK per connection per batch of frames, not one per segment; after the write, so its
    // window counts what the host socket took.
    for (const flow of this.touched) {
      this.flushToHost(flow);
      flow.conn.flushAck();
    }
    this.touched.clear();
  }

  /**
   * Queues a frame for the guest. `essential`: a TCP connection's own segment, kept up to the hard
   * caps; anything else is dropped (and counted) once the queue is past the high-water mark.
   */
  private sendFrame(frame: Buffer, essential = false): void {
    const link = this.link;
    if (!link || link.destroyed) return;
    const queued = this.outBytes + this.outInFlight;
    const l = this.limits;
    if (
      (!essential && this.congested) ||
      queued + frame.length > l.linkMaxBacklog ||
      this.outQueue.length >= l.linkMaxFrames
    ) {
      this.counters.framesOutDropped++;
      return;
    }
    this.counters.framesOut++;
    this.outQueue.push(frame);
    this.outBytes += 4 + frame.length;
    if (queued + frame.length > l.linkHighWater) this.congested = true;
    if (!this.outScheduled && !this.outWriting) {
      this.outScheduled = true;
      process.nextTick(this.flushLink);
    }
  }

  // Frames produced in one tick leave in one writev, and one writev at a time: what waits for a
  // stalled NIC is in outQueue, where the caps above see it, not in the socket's own buffer.
  private readonly flushLink = (): void => {
    this.outScheduled = false;
    const link = this.link;
    if (this.outWriting || this.outQueue.length === 0) return;
    if (!link || link.destroyed) {
      this.outQueue = [];
      this.outBytes = 0;
      return;
    }
    const frames = this.outQueue;
    this.outQueue = [];
    this.outInFlight = this.outBytes;
    this.outBytes = 0;
    this.outWriting = true;
    link.cork();
    for (let i = 0; i < frames.length - 1; i++) {
      link.write(lengthPrefix(frames[i].length));
      link.write(frames[i]);
    }
    const last = frames[frames.length - 1];
    link.write(lengthPrefix(last.length));
    link.write(last, () => {
      if (this.link !== link) return;
      this.outWriting = false;
      this.outInFlight = 0;
      this.flushLink();
      if (this.congested && this.outBytes + this.outInFlight <= this.limits.linkHighWater / 2) {
        this.congested = false;
        for (const f of this.tcp.values()) f.conn.resume();
      }
    });
    link.uncork();
  };

  private canSend = (): boolean => !this.congested && this.link !== undefined;

  /** True when the frame was for us and well-formed. */
  private handleFrame(frame: Buffer): boolean {
    const eth = parseEthernet(frame);
    if (!eth) return false;
    if (eth.type === ETHERTYPE_ARP) return this.handleArp(eth.src, eth.payload);
    if (eth.type !== ETHERTYPE_IPV4) return false;
    if (!eth.dst.equals(this.gatewayMac) && !eth.dst.equals(BROADCAST_MAC)) return false;
    const ip = parseIpv4(eth.payload);
    if (!ip) return false;
    if (ip.protocol === IPPROTO_UDP) {
      const udp = parseUdp(ip);
      if (!udp) return false;
      if (udp.dstPort === 67 && (ip.dst === 0xffffffff || ip.dst === this.gatewayIp))
        return this.handleDhcp(udp.payload);
      if (ip.src !== this.guestIp) return false;
      this.learnGuestMac(eth.src);
      if (ip.dst === this.gatewayIp && udp.dstPort === 53) return this.handleDns(udp.srcPort, udp.payload);
      return this.handleUdp(ip, udp.srcPort, udp.dstPort, udp.payload);
    }
    if (ip.src !== this.guestIp) return false;
    this.learnGuestMac(eth.src);
    if (ip.protocol === IPPROTO_TCP) {
      const seg = parseTcp(ip);
      return seg ? this.handleTcp(ip, seg) : false;
    }
    if (ip.protocol === IPPROTO_ICMP) return this.handleIcmp(ip);
    return false;
  }

  private learnGuestMac(mac: Mac): void {
    if (!mac.equals(this.guestMac) && (mac[0] & 1) === 0) this.guestMac = Buffer.from(mac);
  }

  private handleArp(ethSrc: Mac, payload: Buffer): boolean {
    const arp = parseArp(payload);
    if (!arp) return false;
    if (arp.senderIp === this.guestIp) this.learnGuestMac(arp.senderMac);
    if (arp.op !== 1 || arp.targetIp !== this.gatewayIp || arp.senderIp === 0) return arp.op === 2;
    this.sendFrame(
      buildArp(ethSrc, this.gatewayMac, {
        op: 2,
        senderMac: this.gatewayMac,
        senderIp: this.gatewayIp,
        targetMac: arp.senderMac,
        targetIp: arp.senderIp,
      }),
    );
    return true;
  }

  private sendIp(dst: number, src: number, protocol: number, payload: Buffer): void {
    const dstMac = dst === 0xffffffff ? BROADCAST_MAC : this.guestMac;
    for (const f of buildIpv4Frames(dstMac, this.gatewayMac, src, dst, protocol, payload, this.mtu)) this.sendFrame(f);
  }

  private sendUdp(srcIp: number, srcPort: number, dstIp: number, dstPort: number, payload: Buffer): void {
    this.sendIp(dstIp, srcIp, IPPROTO_UDP, buildUdp(srcIp, dstIp, srcPort, dstPort, payload));
  }

  // ---- ICMP, DHCP, DNS ----

  private handleIcmp(ip: Ipv4Packet): boolean {
    const icmp = parseIcmp(ip.payload);
    if (!icmp) return false;
    // Echo to the gateway only: relaying pings would need raw sockets on the host.
    if (icmp.type !== 8 || ip.dst !== this.gatewayIp) return false;
    this.sendIp(ip.src, this.gatewayIp, IPPROTO_ICMP, buildIcmp(0, 0, icmp.rest, icmp.data));
    return true;
  }

  /** ICMP destination unreachable quoting the offending packet (RFC 792: header + 8 bytes). */
  private sendUnreachable(ip: Ipv4Packet, code: number): void {
    const quote = Buffer.concat([ip.header, ip.payload.subarray(0, 8)]);
    this.sendIp(ip.src, this.gatewayIp, IPPROTO_ICMP, buildIcmp(3, code, 0, quote));
  }

  private handleDhcp(payload: Buffer): boolean {
    const req = parseDhcp(payload);
    if (!req) return false;
    const reply = dhcpReply(req, {
      ip: this.guestIp,
      netmask: this.netmask,
      gateway: this.gatewayIp,
      dns: this.gatewayIp,
      mtu: this.mtu,
      leaseSeconds: 86400,
    });
    if (!reply) return true;
    if (req.type === DhcpMessage.REQUEST || req.type === DhcpMessage.DISCOVER) this.guestMac = Buffer.from(req.chaddr);
    // Broadcast: the client may not have its address yet.
    this.sendIp(0xffffffff, this.gatewayIp, IPPROTO_UDP, buildUdp(this.gatewayIp, 0xffffffff, 67, 68, reply));
    return true;
  }

  private handleDns(guestPort: number, payload: Buffer): boolean {
    if (this.pendingDns >= this.limits.maxPendingDns) return false;
    const reply = (msg: Buffer): void => this.sendUdp(this.gatewayIp, 53, this.guestIp, guestPort, msg);
    const query = parseDnsQuery(payload);
    if (!query) {
      if (payload.length >= 12) reply(buildDnsResponse({ id: payload.readUInt16BE(0) }, DnsRcode.FORMERR));
      return payload.length >= 12;
    }
    if (query.opcode !== 0 || query.question.class !== 1) {
      reply(buildDnsResponse(query, DnsRcode.NOTIMP));
      return true;
    }
    const name = query.question.name;
    if (!this.policy.allowsName(name)) {
      // Answered here, never asked upstream: a name is a channel out of the VM.
      this.onDenied?.({ protocol: 'dns', destination: name, reason: this.policy.nameDeniedReason(name) });
      reply(buildDnsResponse(query, this.policy.allowedHosts.length > 0 ? DnsRcode.NXDOMAIN : DnsRcode.REFUSED));
      return true;
    }
    this.pendingDns++;
    this.answerDns(query)
      .then((msg) => {
        if (!this.closed) reply(msg);
      })
      .finally(() => this.pendingDns--);
    return true;
  }

  private async answerDns(query: DnsQuery): Promise<Buffer> {
    const name = query.question.name;
    let result: ResolvedAddress[] | 'nxdomain' | { denied: string };
    const cached = this.dnsCache.get(name);
    if (cached && cached.expiry > Date.now()) {
      result = cached.result;
    } else {
      try {
        result = await this.policy.lookup(name, this.resolver);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOTFOUND') return buildDnsResponse(query, DnsRcode.SERVFAIL);
        result = 'nxdomain';
      }
      const ttl = Array.isArray(result) ? Math.min(60, ...result.map((a) => a.ttl)) : 5;
      if (this.dnsCache.size >= 1024) this.dnsCache.clear();
      this.dnsCache.set(name, { expiry: Date.now() + ttl * 1000, result });
    }
    if (result === 'nxdomain') return buildDnsResponse(query, DnsRcode.NXDOMAIN);
    if ('denied' in result) {
      this.onDenied?.({ protocol: 'dns', destination: name, reason: result.denied });
      return buildDnsResponse(query, DnsRcode.NXDOMAIN);
    }
    // The guest is IPv4-only: other types get an empty answer (NODATA), so resolvers fall back to A.
    if (query.question.type !== DnsType.A && query.question.type !== DnsType.ANY)
      return buildDnsResponse(query, DnsRcode.NOERROR);
    let answers = result.slice(0, 16);
    if (this.policy.filtersDns) {
      const screened = this.policy.learn(answers);
      for (const d of screened.dropped)
        this.onDenied?.({ protocol: 'dns', destination: name, reason: `answer ${d.address} dropped: ${d.reason}` });
      answers = screened.kept;
    }
    return buildDnsResponse(query, DnsRcode.NOERROR, answers);
  }

  // ---- policy ----

  /** Where a guest destination goes on the host, or why it may not. */
  private route(dst: number, port: number, protocol: 'tcp' | 'udp'): { target: string } | { denied: string } {
    let target: string;
    if (dst === this.gatewayIp) {
      // The gateway address stands for the host's loopback (like slirp's 10.0.2.2).
      if (port === 53) return { denied: 'port 53 of the gateway is its DNS server (UDP only)' };
      target = LOOPBACK;
    } else if ((dst & this.netmask) === (this.guestIp & this.netmask)) {
      return { denied: 'no other hosts on the guest network' };
    } else if (dst >>> 24 === 127) {
      return { denied: 'the host loopback is reached through the gateway address' };
    } else {
      target = numberToIpv4(dst);
    }
    const verdict = this.policy.check(target);
    if (!verdict.allowed) {
      this.onDenied?.({
        protocol,
        destination: dst === this.gatewayIp ? `${target} (via gateway)` : target,
        port,
        reason: verdict.reason,
      });
      return { denied: verdict.reason };
    }
    return { target };
  }

  // ---- UDP ----

  private handleUdp(ip: Ipv4Packet, guestPort: number, dstPort: number, payload: Buffer): boolean {
    const key = `${guestPort}:${ip.dst}:${dstPort}`;
    let flow = this.udp.get(key);
    if (!flow) {
      const r = this.route(ip.dst, dstPort, 'udp');
      if ('denied' in r) {
        this.sendUnreachable(ip, 13); // communication administratively prohibited
        return true;
      }
      if (this.udp.size >= this.limits.maxUdpFlows) {
        this.sendUnreachable(ip, 13);
        return true;
      }
      const socket = dgram.createSocket('udp4');
      const created: UdpFlow = {
        socket,
        target: r.target,
        remoteIp: ip.dst,
        remotePort: dstPort,
        guestPort,
        lastActive: Date.now(),
        inFlight: 0,
      };
      socket.on('message', (msg, rinfo) => {
        // Unconnected socket: take replies from the flow's peer only.
        if (rinfo.address !== created.target || rinfo.port !== created.remotePort || this.congested) return;
        created.lastActive = Date.now();
        this.sendUdp(created.remoteIp, created.remotePort, this.guestIp, created.guestPort, msg);
      });
      socket.on('error', (err) => {
        this.onWarning?.(`udp relay to ${created.target}:${created.remotePort}: ${err.message}`);
        this.closeUdp(key);
      });
      this.udp.set(key, created);
      flow = created;
    }
    flow.lastActive = Date.now();
    const charge = payload.length + PIECE_OVERHEAD;
    if (!this.budgets.udp.tryTake(charge)) {
      this.counters.datagramsDropped++;
      return true;
    }
    const sending = flow;
    sending.inFlight += charge;
    // A copy: the payload is a view into the link's chunk, and the socket may queue it a while.
    sending.socket.send(Buffer.from(payload), flow.remotePort, flow.target, () => this.releaseUdp(sending, charge));
    return true;
  }

  private releaseUdp(flow: UdpFlow, charge: number): void {
    const n = Math.min(charge, flow.inFlight);
    flow.inFlight -= n;
    this.budgets.udp.release(n);
  }

  private closeUdp(key: string): void {
    const flow = this.udp.get(key);
    if (!flow) return;
    this.udp.delete(key);
    this.releaseUdp(flow, flow.inFlight);
    try {
      flow.socket.close();
    } catch {
      // already closed
    }
  }

  private sweepUdp(): void {
    const cutoff = Date.now() - this.limits.udpIdleMs;
    for (const [key, flow] of this.udp) if (flow.lastActive < cutoff) this.closeUdp(key);
  }

  // ---- TCP ----

  private sendTcp(remoteIp: number, h: TcpHeaderFields, payload?: Buffer, essential = true): void {
    this.sendFrame(buildTcpFrame(this.guestMac, this.gatewayMac, remoteIp, this.guestIp, h, payload), essential);
  }

  /** RST for a segment that belongs to no connection (RFC 9293 3.10.7.1). */
  private sendResetFor(ip: Ipv4Packet, seg: TcpSegment): void {
    if (seg.flags & TcpFlags.RST) return;
    const h: TcpHeaderFields =
      seg.flags & TcpFlags.ACK
        ? { srcPort: seg.dstPort, dstPort: seg.srcPort, seq: seg.ack, ack: 0, flags: TcpFlags.RST, window: 0 }
        : {
            srcPort: seg.dstPort,
            dstPort: seg.srcPort,
            seq: 0,
            ack:
              (seg.seq +
                seg.payload.length +
                (seg.flags & TcpFlags.SYN ? 1 : 0) +
                (seg.flags & TcpFlags.FIN ? 1 : 0)) >>>
              0,
            flags: TcpFlags.RST | TcpFlags.ACK,
            window: 0,
          };
    this.sendTcp(ip.dst, h, undefined, false);
  }

  private handleTcp(ip: Ipv4Packet, seg: TcpSegment): boolean {
    const key = `${seg.srcPort}:${ip.dst}:${seg.dstPort}`;
    let flow = this.tcp.get(key);
    const isSyn = (seg.flags & (TcpFlags.SYN | TcpFlags.ACK | TcpFlags.RST)) === TcpFlags.SYN;
    if (flow && isSyn && flow.conn.canBeReplacedBy(seg)) {
      this.removeFlow(flow);
      flow.conn.destroy();
      flow = undefined;
    }
    if (flow) {
      flow.conn.handleSegment(seg);
      if (!flow.conn.closed) this.touched.add(flow);
      return true;
    }
    if (!isSyn) {
      this.sendResetFor(ip, seg);
      return true;
    }
    const r = this.route(ip.dst, seg.dstPort, 'tcp');
    if ('denied' in r || this.tcp.size >= this.limits.maxTcpConnections) {
      if (!('denied' in r)) this.counters.connectionsRefused++;
      this.sendResetFor(ip, seg);
      return true;
    }
    const created = this.newFlow(key, ip.dst);
    created.conn = TcpConnection.fromSyn(seg, this.tcpEvents(created), this.connOptions(created));
    this.tcp.set(key, created);
    // Reads land in one shared buffer and stop at once when refused (no chunk left behind in the
    // socket, whatever the number of sockets): see hostData.
    const socket = net.connect({
      host: r.target,
      port: seg.dstPort,
      allowHalfOpen: true,
      noDelay: true,
      onread: {
        buffer: HOST_READ_BUFFER,
        callback: (n: number, buf: Uint8Array) => {
          const data = Buffer.allocUnsafeSlow(n);
          data.set(buf.subarray(0, n));
          return this.hostData(created, data);
        },
      },
    });
    created.socket = socket;
    const timer = setTimeout(() => socket.destroy(new Error('connect timeout')), this.limits.connectTimeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      if (created.conn.closed) {
        socket.destroy();
        return;
      }
      this.wireSocket(created, socket, false);
      created.conn.acceptSyn();
    });
    socket.once('error', () => {
      clearTimeout(timer);
      if (socket.connecting || created.conn.state === 'SYN_RECEIVED') created.conn.refuse();
    });
    return true;
  }

  private newFlow(key: string, remoteIp: number, socket?: net.Socket): TcpFlow {
    return {
      key,
      conn: undefined as unknown as TcpConnection,
      remoteIp,
      socket,
      pending: [],
      pendingBytes: 0,
      pendingCharge: 0,
      backlog: 0,
      wired: false,
    };
  }

  private connOptions(flow: TcpFlow): Partial<TcpOptions> {
    // The window counts bytes the host has not taken; the per-piece overhead is the budget's concern.
    return {
      ...this.tcpOptions,
      receiveBacklog: () => (flow.socket?.writableLength ?? 0) + flow.pendingBytes,
      canSend: this.canSend,
    };
  }

  /** Host data for the guest: false stops reading this socket (or all of them: send budget spent). */
  private hostData(flow: TcpFlow, data: Buffer): boolean {
    const ok = flow.conn.write(data);
    if (this.budgets.send.exhausted) {
      this.pauseHostReads();
      return false;
    }
    return ok;
  }

  private pauseHostReads(): void {
    if (this.hostReadsPaused) return;
    this.hostReadsPaused = true;
    for (const f of this.tcp.values()) if (f.wired) f.socket?.pause();
    this.budgets.send.wait(() => {
      this.hostReadsPaused = false;
      for (const f of this.tcp.values()) if (f.wired && !f.conn.sendBlocked) f.socket?.resume();
    });
  }

  /** Writes the guest data of this batch to the host socket: one copy, one write. */
  private flushToHost(flow: TcpFlow): void {
    if (flow.pending.length === 0) return;
    const parts = flow.pending;
    const charge = flow.pendingCharge;
    flow.pending = [];
    flow.pendingBytes = 0;
    flow.pendingCharge = 0;
    const socket = flow.socket;
    if (!socket || socket.destroyed) return this.releaseBacklog(flow, charge);
    // The copy also lets go of the link's chunk that the segments are views into.
    socket.write(Buffer.concat(parts), () => this.releaseBacklog(flow, charge));
  }

  private releaseBacklog(flow: TcpFlow, charge: number): void {
    const n = Math.min(charge, flow.backlog);
    flow.backlog -= n;
    this.budgets.receive.release(n);
  }

  private tcpEvents(flow: TcpFlow): Parameters<typeof TcpConnection.fromSyn>[1] {
    return {
      send: (h, payload) => this.sendTcp(flow.remoteIp, h, payload),
      onData: (data) => {
        const socket = flow.socket;
        if (!socket || socket.destroyed) return;
        const charge = data.length + PIECE_OVERHEAD;
        this.budgets.receive.take(charge);
        flow.backlog += charge;
        flow.pendingCharge += charge;
        flow.pendingBytes += data.length;
        flow.pending.push(data);
        this.touched.add(flow);
      },
      onEnd: () => {
        this.flushToHost(flow);
        flow.socket?.end();
      },
      onDrain: () => {
        if (!this.hostReadsPaused) flow.socket?.resume();
      },
      onDropped: () => void this.counters.segmentsDropped++,
      onClose: (reason) => {
        this.removeFlow(flow);
        this.flushToHost(flow);
        const socket = flow.socket;
        if (socket && !socket.destroyed) {
          if (reason === 'closed') socket.destroy();
          else socket.resetAndDestroy();
        }
      },
    };
  }

  private removeFlow(flow: TcpFlow): void {
    if (this.tcp.get(flow.key) === flow) this.tcp.delete(flow.key);
    this.touched.delete(flow);
  }

  /** Relays a connected host socket both ways with back-pressure on each side. */
  private wireSocket(flow: TcpFlow, socket: net.Socket, viaData: boolean): void {
    flow.wired = true;
    // Accepted (forwarded) sockets cannot read into a buffer of ours: they get 'data' events, and
    // each may hold one read while paused.
    if (viaData) {
      socket.on('data', (data: Buffer) => {
        if (!this.hostData(flow, data)) socket.pause();
      });
    }
    socket.on('end', () => flow.conn.end());
    socket.on('drain', () => flow.conn.windowMaybeOpened());
    socket.on('error', () => undefined); // 'close' follows with hadError
    socket.on('close', (hadError) => {
      // Writes that never completed release their charge here (at most once: see releaseBacklog).
      this.releaseBacklog(flow, flow.backlog);
      if (hadError && !flow.conn.closed) flow.conn.reset();
    });
    if (!this.hostReadsPaused) socket.resume();
    else socket.pause();
  }

  /**
   * Port forwarding: opens a connection from the gateway address to guestPort in the guest and
   * relays `socket` (accepted on the host) over it. The socket is reset if the guest refuses.
   */
  forward(socket: net.Socket, guestPort: number): void {
    if (this.closed || this.tcp.size >= this.limits.maxTcpConnections) {
      if (!this.closed) this.counters.connectionsRefused++;
      socket.resetAndDestroy();
      return;
    }
    socket.pause();
    let localPort = 0;
    for (let tries = 0; tries <= FORWARD_PORTS.last - FORWARD_PORTS.first; tries++) {
      const p = this.nextForwardPort;
      this.nextForwardPort = p === FORWARD_PORTS.last ? FORWARD_PORTS.first : p + 1;
      if (!this.tcp.has(`${guestPort}:${this.gatewayIp}:${p}`)) {
        localPort = p;
        break;
      }
    }
    if (localPort === 0) {
      socket.resetAndDestroy();
      return;
    }
    const flow = this.newFlow(`${guestPort}:${this.gatewayIp}:${localPort}`, this.gatewayIp, socket);
    const events = this.tcpEvents(flow);
    this.tcp.set(flow.key, flow);
    socket.on('error', () => undefined);
    flow.conn = TcpConnection.connect(
      localPort,
      guestPort,
      {
        ...events,
        onEstablished: () => this.wireSocket(flow, socket, true),
      },
      this.connOptions(flow),
    );
    socket.once('close', () => {
      if (flow.conn.state === 'SYN_SENT') flow.conn.destroy();
    });
  }
}
