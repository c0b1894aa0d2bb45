// The gateway as QEMU sees it: a unix socket speaking length-prefixed frames. Malformed input
// must cost nothing but the frame; a second client is refused; port listeners fail fast.
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ConflictError } from '@smolvm/common';
import { hostResolver, listenPortForwards, startGateway, staticResolver, type Gateway } from '../src';
import { buildDnsQuery, buildDnsResponse, DnsRcode, parseDnsAnswers, parseDnsQuery } from '../src/dns';
import { FrameDecoder, lengthPrefix } from '../src/link';
import {
  buildArp,
  buildIcmp,
  buildIpv4Frames,
  buildTcpFrame,
  buildUdp,
  ETH_HEADER,
  ETHERTYPE_ARP,
  IPPROTO_ICMP,
  IPPROTO_UDP,
  ipv4ToNumber,
  parseArp,
  parseEthernet,
  parseIcmp,
  parseIpv4,
  parseMac,
  parseUdp,
  TcpFlags,
} from '../src/packets';

const GUEST_MAC = parseMac('52:54:00:12:34:56');
const GW_MAC = parseMac('52:54:00:12:34:01');
const GUEST = ipv4ToNumber('192.168.127.2');
const GW = ipv4ToNumber('192.168.127.1');

let dir: string;
let gw: Gateway;
let client: net.Socket;
const warnings: string[] = [];
const frames: Buffer[] = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netpolicy-link-'));
  const socketPath = path.join(dir, 'net.sock');
  gw = await startGateway({
    policy: { allowHosts: ['ok.test'] },
    socketPath,
    resolver: staticResolver({ 'ok.test': ['198.18.0.9'] }),
    onWarning: (w) => warnings.push(w),
  });
  client = net.connect(socketPath);
  const decoder = new FrameDecoder();
  client.on('data', (d) => frames.push(...decoder.push(d)));
  await new Promise((r) => client.once('connect', r));
});

afterAll(async () => {
  client?.destroy();
  await gw?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const send = (...fs: Buffer[]): void =>
  void client.write(Buffer.concat(fs.flatMap((f) => [lengthPrefix(f.length), f])));

async function next(match: (f: Buffer) => boolean, ms = 2000): Promise<Buffer> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const i = frames.findIndex(match);
    if (i >= 0) return frames.splice(i, 1)[0];
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('no matching frame from the gateway');
}

const arpRequest = (): Buffer =>
  buildArp(Buffer.alloc(6, 0xff), GUEST_MAC, {
    op: 1,
    senderMac: GUEST_MAC,
    senderIp: GUEST,
    targetMac: Buffer.alloc(6),
    targetIp: GW,
  });
const isArpReply = (f: Buffer): boolean =>
  f.readUInt16BE(12) === ETHERTYPE_ARP && parseArp(f.subarray(ETH_HEADER))?.op === 2;
const udpTo = (port: number, payload: Buffer, dst = GW): Buffer =>
  buildIpv4Frames(GW_MAC, GUEST_MAC, GUEST, dst, IPPROTO_UDP, buildUdp(GUEST, dst, 5353, port, payload), 1500)[0];
const udpReply = (f: Buffer): ReturnType<typeof parseUdp> => {
  const ip = parseIpv4(parseEthernet(f)?.payload ?? Buffer.alloc(0));
  return ip && ip.protocol === IPPROTO_UDP ? parseUdp(ip) : undefined;
};

test('ARP for the gateway is answered with its MAC', async () => {
  send(arpRequest());
  const reply = parseArp((await next(isArpReply)).subarray(ETH_HEADER));
  expect(reply?.senderMac).toEqual(GW_MAC);
  expect(reply?.targetIp).toBe(GUEST);
});

test('ICMP echo to the gateway is answered', async () => {
  send(
    buildIpv4Frames(
      GW_MAC,
      GUEST_MAC,
      GUEST,
      GW,
      IPPROTO_ICMP,
      buildIcmp(8, 0, 0x00070001, Buffer.from('abc')),
      1500,
    )[0],
  );
  const f = await next((x) => parseIpv4(x.subarray(ETH_HEADER))?.protocol === IPPROTO_ICMP);
  expect(parseIcmp(parseIpv4(f.subarray(ETH_HEADER))!.payload)).toEqual(
    expect.objectContaining({ type: 0, rest: 0x00070001 }),
  );
});

test('DNS: an allowed name is answered, others are NXDOMAIN, garbage gets FORMERR', async () => {
  send(udpTo(53, buildDnsQuery(1, 'ok.test')));
  const ok = parseDnsAnswers((await next((f) => udpReply(f)?.payload.readUInt16BE(0) === 1)).subarray(ETH_HEADER + 28));
  expect(ok?.answers).toEqual([{ address: '198.18.0.9', ttl: 300 }]);
  send(udpTo(53, buildDnsQuery(2, 'blocked.test')));
  const blocked = udpReply(await next((f) => udpReply(f)?.payload.readUInt16BE(0) === 2));
  expect(parseDnsAnswers(blocked!.payload)?.rcode).toBe(DnsRcode.NXDOMAIN);
  send(udpTo(53, Buffer.from([0, 3, 1, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0xff])));
  const bad = udpReply(await next((f) => udpReply(f)?.payload.readUInt16BE(0) === 3));
  expect(bad!.payload.readUInt16BE(2) & 0xf).toBe(DnsRcode.FORMERR);
});

test('malformed frames are dropped without a crash; the gateway keeps answering', async () => {
  const before = gw.stats().framesDropped;
  const good = buildTcpFrame(GW_MAC, GUEST_MAC, GUEST, ipv4ToNumber('198.18.0.9'), {
    srcPort: 4000,
    dstPort: 80,
    seq: 1,
    ack: 0,
    flags: TcpFlags.SYN,
    window: 100,
  });
  const badTcpSum = Buffer.from(good);
  badTcpSum[ETH_HEADER + 20 + 16] ^= 0x55;
  const badIpSum = Buffer.from(good);
  badIpSum[ETH_HEADER + 10] ^= 0x55;
  const bogusIpLength = Buffer.from(good);
  bogusIpLength.writeUInt16BE(9000, ETH_HEADER + 2);
  const truncated = good.subarray(0, 9);
  const truncatedIp = good.subarray(0, ETH_HEADER + 12);
  const junk = Buffer.from('\x08\x00not an ip packet at all');
  send(truncated, truncatedIp, badTcpSum, badIpSum, bogusIpLength, junk, Buffer.alloc(14));
  client.write(lengthPrefix(0)); // empty frame
  client.write(Buffer.concat([lengthPrefix(200_000), Buffer.alloc(200_000, 0xaa)])); // oversized: skipped
  send(arpRequest());
  await next(isArpReply);
  expect(gw.stats().framesDropped - before).toBeGreaterThanOrEqual(9);
  // No RST, no SYN-ACK, no connection: the bad SYNs never reached TCP.
  expect(gw.stats().tcpConnections).toBe(0);
  expect(frames.filter((f) => parseIpv4(f.subarray(ETH_HEADER))?.protocol === 6)).toHaveLength(0);
});

test('a second client is refused while the first is served', async () => {
  const other = net.connect(path.join(dir, 'net.sock'));
  const outcome = await new Promise<string>((resolve) => {
    other.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    other.on('close', () => resolve('closed'));
  });
  expect(['ECONNREFUSED', 'ENOENT', 'closed', 'ECONNRESET']).toContain(outcome);
  send(arpRequest());
  await next(isArpReply);
});

test('a stream out of step (absurd length) closes the link with a warning, not the process', async () => {
  const closed = new Promise((r) => client.once('close', r));
  client.write(lengthPrefix(0xfffffff0));
  await closed;
  expect(warnings.join('\n')).toMatch(/out of step/);
});

describe('port forwards', () => {
  test('a busy host port is a ConflictError with a remedy, and nothing stays bound', async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as net.AddressInfo).port;
    const free = net.createServer();
    await new Promise<void>((r) => free.listen(0, '127.0.0.1', () => r()));
    const freePort = (free.address() as net.AddressInfo).port;
    await new Promise<void>((r) => free.close(() => r()));
    try {
      const err = await listenPortForwards([
        { hostPort: freePort, guestPort: 80 },
        { hostPort: port, guestPort: 8080 },
      ]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConflictError);
      expect((err as ConflictError).message).toContain(`127.0.0.1:${port} is already in use`);
      expect((err as ConflictError).remedy).toMatch(/pick another host port/);
      // The first listener was released.
      const again = await listenPortForwards([{ hostPort: freePort, guestPort: 80 }]);
      await again.close();
    } finally {
      busy.close();
    }
  });

  test('the same host port twice is refused', async () => {
    await expect(
      listenPortForwards([
        { hostPort: 1, guestPort: 1 },
        { hostPort: 1, guestPort: 2 },
      ]),
    ).rejects.toThrow(/forwarded twice/);
  });
});

test('the host resolver asks the configured servers, with TTLs (fake DNS server on loopback)', async () => {
  const fake = dgram.createSocket('udp4');
  fake.on('message', (m, r) => {
    const q = parseDnsQuery(m);
    if (!q) return;
    const found = q.question.name === 'svc.test' && q.question.type === 1;
    fake.send(
      buildDnsResponse(
        q,
        q.question.name === 'svc.test' ? DnsRcode.NOERROR : DnsRcode.NXDOMAIN,
        found ? [{ address: '198.18.1.1', ttl: 42 }] : [],
      ),
      r.port,
      r.address,
    );
  });
  await new Promise<void>((r) => fake.bind(0, '127.0.0.1', () => r()));
  try {
    const resolver = hostResolver({ servers: [`127.0.0.1:${fake.address().port}`], timeoutMs: 500 });
    await expect(resolver.resolve4('svc.test')).resolves.toEqual([{ address: '198.18.1.1', ttl: 42 }]);
    await expect(resolver.resolve4('nope.test')).rejects.toMatchObject({ code: 'ENOTFOUND' });
  } finally {
    fake.close();
  }
});
