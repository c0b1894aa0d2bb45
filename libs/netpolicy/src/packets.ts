// Codecs for the frames the gateway speaks: Ethernet II, ARP, IPv4 (with fragmentation on
// output), ICMP, UDP, TCP. Parsers return undefined for anything malformed — a guest must never
// be able to crash the gateway with a frame — and never copy payloads (they are views).

export const ETH_HEADER = 14;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export const TcpFlags = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20 } as const;

export type Mac = Buffer; // 6 bytes
export const BROADCAST_MAC: Mac = Buffer.alloc(6, 0xff);

export function parseMac(text: string): Mac {
  const parts = text.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-f]{2}$/i.test(p))) throw new Error(`not a MAC address: ${text}`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export function formatMac(mac: Mac): string {
  return [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** IPv4 addresses travel as unsigned 32-bit numbers: cheap to compare, hash and mask. */
export function ipv4ToNumber(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255))
    throw new Error(`not an IPv4 address: ${text}`);
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function numberToIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}

/** One's-complement sum of 16-bit words (not yet folded or inverted). */
export function sum16(buf: Buffer, start: number, end: number, initial = 0): number {
  let sum = initial;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (i < end) sum += buf[i] << 8;
  return sum;
}

export function foldChecksum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

function pseudoHeaderSum(src: number, dst: number, protocol: number, length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + length;
}

export interface EthernetFrame {
  dst: Mac;
  src: Mac;
  type: number;
  payload: Buffer;
}

export function parseEthernet(frame: Buffer): EthernetFrame | undefined {
  if (frame.length < ETH_HEADER) return undefined;
  return {
    dst: frame.subarray(0, 6),
    src: frame.subarray(6, 12),
    type: frame.readUInt16BE(12),
    payload: frame.subarray(ETH_HEADER),
  };
}

// ---- ARP (Ethernet/IPv4 only) ----

export interface ArpPacket {
  op: 1 | 2;
  senderMac: Mac;
  senderIp: number;
  targetMac: Mac;
  targetIp: number;
}

export function parseArp(p: Buffer): ArpPacket | undefined {
  if (p.length < 28) return undefined;
  if (p.readUInt16BE(0) !== 1 || p.readUInt16BE(2) !== ETHERTYPE_IPV4 || p[4] !== 6 || p[5] !== 4) return undefined;
  const op = p.readUInt16BE(6);
  if (op !== 1 && op !== 2) return undefined;
  return {
    op,
    senderMac: p.subarray(8, 14),
    senderIp: p.readUInt32BE(14),
    targetMac: p.subarray(18, 24),
    targetIp: p.readUInt32BE(24),
  };
}

export function buildArp(ethDst: Mac, ethSrc: Mac, arp: ArpPacket): Buffer {
  const f = Buffer.alloc(ETH_HEADER + 28);
  writeEthernet(f, 0, ethDst, ethSrc, ETHERTYPE_ARP);
  const o = ETH_HEADER;
  f.writeUInt16BE(1, o);
  f.writeUInt16BE(ETHERTYPE_IPV4, o + 2);
  f[o + 4] = 6;
  f[o + 5] = 4;
  f.writeUInt16BE(arp.op, o + 6);
  arp.senderMac.copy(f, o + 8);
  f.writeUInt32BE(arp.senderIp, o + 14);
  arp.targetMac.copy(f, o + 18);
  f.writeUInt32BE(arp.targetIp, o + 24);
  return f;
}

function writeEthernet(f: Buffer, at: number, dst: Mac, src: Mac, type: number): void {
  dst.copy(f, at);
  src.copy(f, at + 6);
  f.writeUInt16BE(type, at + 12);
}

// ---- IPv4 ----

export interface Ipv4Packet {
  src: number;
  dst: number;
  protocol: number;
  ttl: number;
  id: number;
  /** The whole IP header (for ICMP errors, which quote it). */
  header: Buffer;
  payload: Buffer;
}

/**
 * Validates version, header length, total length (frames may carry Ethernet padding past it)
 * and the header checksum. Fragments are refused: guests send none at our MTU, and reassembly
 * would be a memory-exhaustion surface for little gain.
 */
export function parseIpv4(p: Buffer): Ipv4Packet | undefined {
  if (p.length < 20 || p[0] >> 4 !== 4) return undefined;
  const ihl = (p[0] & 0x0f) * 4;
  const total = p.readUInt16BE(2);
  if (ihl < 20 || total < ihl || total > p.length) return undefined;
  if (foldChecksum(sum16(p, 0, ihl)) !== 0) return undefined;
  const frag = p.readUInt16BE(6);
  if ((frag & 0x2000) !== 0 || (frag & 0x1fff) !== 0) return undefined;
  return {
    src: p.readUInt32BE(12),
    dst: p.readUInt32BE(16),
    protocol: p[9],
    ttl: p[8],
    id: p.readUInt16BE(4),
    header: p.subarray(0, ihl),
    payload: p.subarray(ihl, total),
  };
}

let nextIpId = 1;

/**
 * Builds Ethernet+IPv4 frames around a transport payload whose checksum is already set. Payloads
 * larger than the MTU (UDP datagrams from the host) are fragmented.
 */
export function buildIpv4Frames(
  ethDst: Mac,
  ethSrc: Mac,
  src: number,
  dst: number,
  protocol: number,
  payload: Buffer,
  mtu: number,
): Buffer[] {
  const id = nextIpId++ & 0xffff;
  if (20 + payload.length <= mtu) return [ipv4Frame(ethDst, ethSrc, src, dst, protocol, id, 0, payload)];
  const chunk = Math.floor((mtu - 20) / 8) * 8;
  const frames: Buffer[] = [];
  for (let off = 0; off < payload.length; off += chunk) {
    const last = off + chunk >= payload.length;
    frames.push(
      ipv4Frame(
        ethDst,
        ethSrc,
        src,
        dst,
        protocol,
        id,
        (off / 8) | (last ? 0 : 0x2000),
        payload.subarray(off, off + chunk),
      ),
    );
  }
  return frames;
}

function ipv4Frame(
  ethDst: Mac,
  ethSrc: Mac,
  src: number,
  dst: number,
  protocol: number,
  id: number,
  frag: number,
  payload: Buffer,
): Buffer {
  const f = Buffer.allocUnsafe(ETH_HEADER + 20 + payload.length);
  writeEthernet(f, 0, ethDst, ethSrc, ETHERTYPE_IPV4);
  writeIpv4Header(f, ETH_HEADER, src, dst, protocol, 20 + payload.length, id, frag);
  payload.copy(f, ETH_HEADER + 20);
  return f;
}

function writeIpv4Header(
  f: Buffer,
  o: number,
  src: number,
  dst: number,
  protocol: number,
  total: number,
  id: number,
  frag: number,
): void {
  f[o] = 0x45;
  f[o + 1] = 0;
  f.writeUInt16BE(total, o + 2);
  f.writeUInt16BE(id, o + 4);
  f.writeUInt16BE(frag, o + 6);
  f[o + 8] = 64;
  f[o + 9] = protocol;
  f.writeUInt16BE(0, o + 10);
  f.writeUInt32BE(src, o + 12);
  f.writeUInt32BE(dst, o + 16);
  f.writeUInt16BE(foldChecksum(sum16(f, o, o + 20)), o + 10);
}

// ---- ICMP ----

export interface IcmpPacket {
  type: number;
  code: number;
  /** Bytes 4..8 of the header (echo id + sequence). */
  rest: number;
  data: Buffer;
}

export function parseIcmp(p: Buffer): IcmpPacket | undefined {
  if (p.length < 8 || foldChecksum(sum16(p, 0, p.length)) !== 0) return undefined;
  return { type: p[0], code: p[1], rest: p.readUInt32BE(4), data: p.subarray(8) };
}

export function buildIcmp(type: number, code: number, rest: number, data: Buffer): Buffer {
  const p = Buffer.alloc(8 + data.length);
  p[0] = type;
  p[1] = code;
  p.writeUInt32BE(rest, 4);
  data.copy(p, 8);
  p.writeUInt16BE(foldChecksum(sum16(p, 0, p.length)), 2);
  return p;
}

// ---- UDP ----

export interface UdpDatagram {
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

export function parseUdp(ip: Ipv4Packet): UdpDatagram | undefined {
  const p = ip.payload;
  if (p.length < 8) return undefined;
  const length = p.readUInt16BE(4);
  if (length < 8 || length > p.length) return undefined;
  // A zero checksum means "none" for UDP over IPv4.
  if (
    p.readUInt16BE(6) !== 0 &&
    foldChecksum(sum16(p, 0, length, pseudoHeaderSum(ip.src, ip.dst, IPPROTO_UDP, length))) !== 0
  )
    return undefined;
  return { srcPort: p.readUInt16BE(0), dstPort: p.readUInt16BE(2), payload: p.subarray(8, length) };
}

export function buildUdp(src: number, dst: number, srcPort: number, dstPort: number, payload: Buffer): Buffer {
  const length = 8 + payload.length;
  const p = Buffer.allocUnsafe(length);
  p.writeUInt16BE(srcPort, 0);
  p.writeUInt16BE(dstPort, 2);
  p.writeUInt16BE(length, 4);
  p.writeUInt16BE(0, 6);
  payload.copy(p, 8);
  const sum = foldChecksum(sum16(p, 0, length, pseudoHeaderSum(src, dst, IPPROTO_UDP, length)));
  p.writeUInt16BE(sum === 0 ? 0xffff : sum, 6);
  return p;
}

// ---- TCP ----

export interface TcpHeaderFields {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  /** Options, only those we act on. */
  mss?: number;
  wscale?: number;
}

export interface TcpSegment extends TcpHeaderFields {
  payload: Buffer;
}

export function parseTcp(ip: Ipv4Packet): TcpSegment | undefined {
  const p = ip.payload;
  if (p.length < 20) return undefined;
  const dataOffset = (p[12] >> 4) * 4;
  if (dataOffset < 20 || dataOffset > p.length) return undefined;
  if (foldChecksum(sum16(p, 0, p.length, pseudoHeaderSum(ip.src, ip.dst, IPPROTO_TCP, p.length))) !== 0)
    return undefined;
  const seg: TcpSegment = {
    srcPort: p.readUInt16BE(0),
    dstPort: p.readUInt16BE(2),
    seq: p.readUInt32BE(4),
    ack: p.readUInt32BE(8),
    flags: p[13] & 0x3f,
    window: p.readUInt16BE(14),
    payload: p.subarray(dataOffset),
  };
  for (let i = 20; i < dataOffset;) {
    const kind = p[i];
    if (kind === 0) break;
    if (kind === 1) {
      i++;
      continue;
    }
    const len = p[i + 1];
    if (len === undefined || len < 2 || i + len > dataOffset) break;
    if (kind === 2 && len === 4) seg.mss = p.readUInt16BE(i + 2);
    else if (kind === 3 && len === 3) seg.wscale = Math.min(p[i + 2], 14);
    i += len;
  }
  return seg;
}

/**
 * One complete Ethernet frame carrying a TCP segment, written in a single allocation (the data
 * path: payload copied once, checksum computed once).
 */
export function buildTcpFrame(
  ethDst: Mac,
  ethSrc: Mac,
  src: number,
  dst: number,
  h: TcpHeaderFields,
  payload?: Buffer,
): Buffer {
  const optLen = (h.mss !== undefined ? 4 : 0) + (h.wscale !== undefined ? 4 : 0);
  const tcpLen = 20 + optLen + (payload?.length ?? 0);
  const f = Buffer.allocUnsafe(ETH_HEADER + 20 + tcpLen);
  writeEthernet(f, 0, ethDst, ethSrc, ETHERTYPE_IPV4);
  writeIpv4Header(f, ETH_HEADER, src, dst, IPPROTO_TCP, 20 + tcpLen, nextIpId++ & 0xffff, 0x4000);
  const o = ETH_HEADER + 20;
  f.writeUInt16BE(h.srcPort, o);
  f.writeUInt16BE(h.dstPort, o + 2);
  f.writeUInt32BE(h.seq >>> 0, o + 4);
  f.writeUInt32BE(h.ack >>> 0, o + 8);
  f[o + 12] = ((20 + optLen) / 4) << 4;
  f[o + 13] = h.flags;
  f.writeUInt16BE(h.window, o + 14);
  f.writeUInt32BE(0, o + 16); // checksum + urgent pointer
  let i = o + 20;
  if (h.mss !== undefined) {
    f.writeUInt32BE(0x02040000 | h.mss, i);
    i += 4;
  }
  if (h.wscale !== undefined) {
    f.writeUInt32BE(0x01030300 | h.wscale, i); // NOP + window scale
    i += 4;
  }
  payload?.copy(f, i);
  f.writeUInt16BE(foldChecksum(sum16(f, o, o + tcpLen, pseudoHeaderSum(src, dst, IPPROTO_TCP, tcpLen))), o + 16);
  return f;
}
