// Packet, DNS, DHCP and stream-framing codecs, including what they must refuse.
import { dhcpReply, DhcpMessage, parseDhcp } from '../src/dhcp';
import { buildDnsQuery, buildDnsResponse, DnsRcode, DnsType, parseDnsAnswers, parseDnsQuery } from '../src/dns';
import { FrameDecoder, lengthPrefix, MAX_FRAME } from '../src/link';
import {
  buildIcmp,
  buildIpv4Frames,
  buildTcpFrame,
  buildUdp,
  ETH_HEADER,
  foldChecksum,
  IPPROTO_TCP,
  IPPROTO_UDP,
  ipv4ToNumber,
  numberToIpv4,
  parseEthernet,
  parseIcmp,
  parseIpv4,
  parseMac,
  parseTcp,
  parseUdp,
  sum16,
  TcpFlags,
} from '../src/packets';

const MAC_A = parseMac('52:54:00:00:00:0a');
const MAC_B = parseMac('52:54:00:00:00:0b');
const SRC = ipv4ToNumber('10.0.0.1');
const DST = ipv4ToNumber('10.0.0.2');

test('Internet checksum: RFC 1071 example', () => {
  const data = Buffer.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
  expect(foldChecksum(sum16(data, 0, data.length))).toBe(~0xddf2 & 0xffff);
});

test('IPv4 address text <-> number', () => {
  expect(numberToIpv4(ipv4ToNumber('192.168.127.254'))).toBe('192.168.127.254');
  expect(() => ipv4ToNumber('1.2.3.256')).toThrow();
});

test('TCP frames round-trip with options, payload and valid checksums', () => {
  const payload = Buffer.from('hello tcp');
  const frame = buildTcpFrame(
    MAC_A,
    MAC_B,
    SRC,
    DST,
    {
      srcPort: 1234,
      dstPort: 80,
      seq: 0xfffffff0,
      ack: 42,
      flags: TcpFlags.SYN | TcpFlags.ACK,
      window: 512,
      mss: 1460,
      wscale: 7,
    },
    payload,
  );
  const eth = parseEthernet(frame);
  const ip = eth && parseIpv4(eth.payload);
  expect(ip).toEqual(expect.objectContaining({ src: SRC, dst: DST, protocol: IPPROTO_TCP }));
  const tcp = ip && parseTcp(ip);
  expect(tcp).toEqual(
    expect.objectContaining({
      srcPort: 1234,
      dstPort: 80,
      seq: 0xfffffff0,
      ack: 42,
      flags: TcpFlags.SYN | TcpFlags.ACK,
      window: 512,
      mss: 1460,
      wscale: 7,
    }),
  );
  expect(tcp?.payload.toString()).toBe('hello tcp');
});

test('corrupted TCP, IP header, truncated and bogus-length packets are refused', () => {
  const frame = buildTcpFrame(
    MAC_A,
    MAC_B,
    SRC,
    DST,
    { srcPort: 1, dstPort: 2, seq: 1, ack: 0, flags: TcpFlags.SYN, window: 1 },
    Buffer.from('x'),
  );
  const badTcp = Buffer.from(frame);
  badTcp[badTcp.length - 1] ^= 0xff;
  expect(parseTcp(parseIpv4(badTcp.subarray(ETH_HEADER))!)).toBeUndefined();
  const badIp = Buffer.from(frame);
  badIp[ETH_HEADER + 8] ^= 1; // TTL changed, header checksum not
  expect(parseIpv4(badIp.subarray(ETH_HEADER))).toBeUndefined();
  expect(parseIpv4(frame.subarray(ETH_HEADER, ETH_HEADER + 30))).toBeUndefined(); // total length past the end
  expect(parseEthernet(frame.subarray(0, 10))).toBeUndefined();
  const badOffset = Buffer.from(frame);
  badOffset[ETH_HEADER + 20 + 12] = 0xf0; // data offset 60 > segment
  expect(parseTcp(parseIpv4(badOffset.subarray(ETH_HEADER))!)).toBeUndefined();
});

test('UDP round-trips; large datagrams are fragmented at the MTU', () => {
  const udp = buildUdp(SRC, DST, 53, 4000, Buffer.from('answer'));
  const [frame] = buildIpv4Frames(MAC_A, MAC_B, SRC, DST, IPPROTO_UDP, udp, 1500);
  const ip = parseIpv4(parseEthernet(frame)!.payload)!;
  expect(parseUdp(ip)).toEqual(expect.objectContaining({ srcPort: 53, dstPort: 4000 }));
  expect(parseUdp(ip)?.payload.toString()).toBe('answer');
  const big = buildUdp(SRC, DST, 1, 2, Buffer.alloc(4000, 9));
  const frags = buildIpv4Frames(MAC_A, MAC_B, SRC, DST, IPPROTO_UDP, big, 1500);
  expect(frags).toHaveLength(3);
  expect(frags.every((f) => f.length - ETH_HEADER <= 1500)).toBe(true);
  // Fragments are refused on input (no reassembly).
  expect(parseIpv4(frags[0].subarray(ETH_HEADER))).toBeUndefined();
});

test('ICMP checksums are verified', () => {
  const echo = buildIcmp(8, 0, 0x12340001, Buffer.from('ping'));
  expect(parseIcmp(echo)).toEqual(expect.objectContaining({ type: 8, rest: 0x12340001 }));
  echo[9] ^= 1;
  expect(parseIcmp(echo)).toBeUndefined();
});

test('DNS queries and answers round-trip; malformed and looping names are refused', () => {
  const q = parseDnsQuery(buildDnsQuery(0xbeef, 'API.Example.test', DnsType.A));
  expect(q).toEqual({
    id: 0xbeef,
    rd: true,
    opcode: 0,
    question: { name: 'api.example.test', type: DnsType.A, class: 1 },
  });
  const resp = buildDnsResponse(q!, DnsRcode.NOERROR, [
    { address: '198.18.0.1', ttl: 30 },
    { address: '198.18.0.2', ttl: 60 },
  ]);
  expect(parseDnsAnswers(resp)).toEqual({
    id: 0xbeef,
    rcode: 0,
    answers: [
      { address: '198.18.0.1', ttl: 30 },
      { address: '198.18.0.2', ttl: 60 },
    ],
  });
  expect(parseDnsAnswers(buildDnsResponse(q!, DnsRcode.NXDOMAIN))?.rcode).toBe(DnsRcode.NXDOMAIN);
  const loop = Buffer.from(buildDnsQuery(1, 'a'));
  loop.writeUInt16BE(0xc00c, 12); // the name points at itself
  expect(parseDnsQuery(loop)).toBeUndefined();
  expect(parseDnsQuery(Buffer.alloc(5))).toBeUndefined();
  expect(parseDnsQuery(resp)).toBeUndefined(); // a response is not a query
});

test('DHCP: DISCOVER gets an OFFER, REQUEST an ACK, a foreign address a NAK', () => {
  const req = (type: number, requested?: number): Buffer => {
    const p = Buffer.alloc(300);
    p[0] = 1;
    p[1] = 1;
    p[2] = 6;
    p.writeUInt32BE(0xabcdef01, 4);
    MAC_A.copy(p, 28);
    p.writeUInt32BE(0x63825363, 236);
    let i = 240;
    p[i++] = 53;
    p[i++] = 1;
    p[i++] = type;
    if (requested !== undefined) {
      p[i++] = 50;
      p[i++] = 4;
      p.writeUInt32BE(requested, i);
      i += 4;
    }
    p[i] = 255;
    return p;
  };
  const lease = {
    ip: ipv4ToNumber('192.168.127.2'),
    netmask: 0xffffff00,
    gateway: ipv4ToNumber('192.168.127.1'),
    dns: ipv4ToNumber('192.168.127.1'),
    mtu: 1500,
    leaseSeconds: 3600,
  };
  const offer = dhcpReply(parseDhcp(req(DhcpMessage.DISCOVER))!, lease)!;
  expect(offer[0]).toBe(2);
  expect(offer.readUInt32BE(4)).toBe(0xabcdef01);
  expect(numberToIpv4(offer.readUInt32BE(16))).toBe('192.168.127.2');
  expect(offer.subarray(240, 243)).toEqual(Buffer.from([53, 1, DhcpMessage.OFFER]));
  expect(dhcpReply(parseDhcp(req(DhcpMessage.REQUEST, lease.ip))!, lease)!.subarray(240, 243)).toEqual(
    Buffer.from([53, 1, DhcpMessage.ACK]),
  );
  expect(dhcpReply(parseDhcp(req(DhcpMessage.REQUEST, ipv4ToNumber('10.1.1.1')))!, lease)!.subarray(240, 243)).toEqual(
    Buffer.from([53, 1, DhcpMessage.NAK]),
  );
  expect(parseDhcp(Buffer.alloc(100))).toBeUndefined();
});

test('stream framing: frames split across chunks, zero and oversized lengths skipped, absurd lengths fatal', () => {
  const d = new FrameDecoder();
  const f1 = Buffer.from('frame-one-xxxxxx');
  const f2 = Buffer.from('frame-two');
  const stream = Buffer.concat([lengthPrefix(f1.length), f1, lengthPrefix(0), lengthPrefix(f2.length), f2]);
  const out = [...d.push(stream.subarray(0, 7)), ...d.push(stream.subarray(7, 25)), ...d.push(stream.subarray(25))];
  expect(out.map(String)).toEqual(['frame-one-xxxxxx', 'frame-two']);
  expect(d.dropped).toBe(1);
  const big = MAX_FRAME + 100;
  const skipped = d.push(Buffer.concat([lengthPrefix(big), Buffer.alloc(1000)]));
  expect(skipped).toHaveLength(0);
  expect(d.push(Buffer.concat([Buffer.alloc(big - 1000), lengthPrefix(3), Buffer.from('abc')])).map(String)).toEqual([
    'abc',
  ]);
  expect(() => d.push(lengthPrefix(0xffffffff))).toThrow(/out of step/);
});
