// A DHCP server with one lease: the guest's fixed address (RFC 2131 subset). For images whose
// init asks for an address; the agent can equally configure the same values statically.

const MAGIC = 0x63825363;
export const DhcpMessage = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;

export interface DhcpRequest {
  type: number;
  xid: number;
  flags: number;
  chaddr: Buffer;
  /** Option 50, or ciaddr when renewing. */
  requestedIp?: number;
}

export function parseDhcp(p: Buffer): DhcpRequest | undefined {
  if (p.length < 240 || p[0] !== 1 || p[1] !== 1 || p[2] !== 6 || p.readUInt32BE(236) !== MAGIC) return undefined;
  let type: number | undefined;
  let requestedIp: number | undefined = p.readUInt32BE(12) || undefined;
  for (let i = 240; i < p.length;) {
    const code = p[i];
    if (code === 255) break;
    if (code === 0) {
      i++;
      continue;
    }
    const len = p[i + 1];
    if (len === undefined || i + 2 + len > p.length) return undefined;
    if (code === 53 && len === 1) type = p[i + 2];
    if (code === 50 && len === 4) requestedIp = p.readUInt32BE(i + 2);
    i += 2 + len;
  }
  if (type === undefined) return undefined;
  return { type, xid: p.readUInt32BE(4), flags: p.readUInt16BE(10), chaddr: p.subarray(28, 34), requestedIp };
}

export interface DhcpLease {
  ip: number;
  netmask: number;
  gateway: number;
  dns: number;
  mtu: number;
  leaseSeconds: number;
}

/** The reply to a request, or undefined when none is due (RELEASE, DECLINE, unknown types). */
export function dhcpReply(req: DhcpRequest, lease: DhcpLease): Buffer | undefined {
  let type: number;
  if (req.type === DhcpMessage.DISCOVER) type = DhcpMessage.OFFER;
  else if (req.type === DhcpMessage.REQUEST)
    type = req.requestedIp === undefined || req.requestedIp === lease.ip ? DhcpMessage.ACK : DhcpMessage.NAK;
  else if (req.type === DhcpMessage.INFORM) type = DhcpMessage.ACK;
  else return undefined;
  const p = Buffer.alloc(300);
  p[0] = 2;
  p[1] = 1;
  p[2] = 6;
  p.writeUInt32BE(req.xid, 4);
  p.writeUInt16BE(req.flags, 10);
  if (type !== DhcpMessage.NAK && req.type !== DhcpMessage.INFORM) p.writeUInt32BE(lease.ip, 16);
  p.writeUInt32BE(lease.gateway, 20);
  req.chaddr.copy(p, 28);
  p.writeUInt32BE(MAGIC, 236);
  let i = 240;
  const opt = (code: number, value: Buffer): void => {
    p[i] = code;
    p[i + 1] = value.length;
    value.copy(p, i + 2);
    i += 2 + value.length;
  };
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n >>> 0);
    return b;
  };
  opt(53, Buffer.from([type]));
  opt(54, u32(lease.gateway));
  if (type !== DhcpMessage.NAK) {
    if (req.type !== DhcpMessage.INFORM) opt(51, u32(lease.leaseSeconds));
    opt(1, u32(lease.netmask));
    opt(3, u32(lease.gateway));
    opt(6, u32(lease.dns));
    opt(26, Buffer.from([lease.mtu >> 8, lease.mtu & 0xff]));
  }
  p[i] = 255;
  return p;
}
