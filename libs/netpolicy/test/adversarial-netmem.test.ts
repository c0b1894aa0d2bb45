// Issue 14, item 2: a hostile guest must not make the process holding the gateway allocate without
// bound. Each test floods a gateway running in a process of its own with raw frames on its stream
// socket (no well-behaved kernel in between) and checks that it was dropped and counted, and that
// the process's peak resident memory stayed under RSS_BOUND above its idle size. A flood stops as
// soon as the bound is crossed, so a regression fails the test without exhausting the machine.
import {
  GatewayProcess,
  hostServers,
  HostileGuest,
  type HostServers,
  type ProcessStats,
} from './helpers/hostile-guest';
import dgram from 'node:dgram';
import { PIECE_OVERHEAD } from '../src/budget';
import { TcpFlags } from '../src/packets';

const MiB = 1024 * 1024;
/** Peak RSS growth allowed over the idle process: the documented bound (README, Security). */
const RSS_BOUND = 192 * MiB;

jest.setTimeout(300_000);

let gwp: GatewayProcess;
let guest: HostileGuest;
let idle: ProcessStats;
let servers: HostServers;

beforeAll(async () => {
  servers = await hostServers();
});

afterAll(async () => {
  await servers?.close();
});

beforeEach(async () => {
  gwp = await GatewayProcess.start();
  guest = await HostileGuest.connect(gwp.socketPath);
  idle = await gwp.stats();
});

afterEach(async () => {
  guest?.close();
  await gwp?.stop();
  servers.dropConnections();
});

/** Fails as soon as the gateway process has grown past the bound; returns its stats. */
async function checked(): Promise<ProcessStats> {
  const s = await gwp.stats();
  const growth = s.peakRss - idle.rss;
  if (growth > RSS_BOUND) {
    throw new Error(
      `gateway process peak RSS grew by ${(growth / MiB).toFixed(0)} MiB (bound ${RSS_BOUND / MiB} MiB): ${JSON.stringify(s)}`,
    );
  }
  return s;
}

/** Sends batches of frames from make(i), checking the bound every batch. */
async function flood(total: number, make: (i: number) => Buffer, batch = 512): Promise<ProcessStats> {
  for (let i = 0; i < total; i += batch) {
    const frames: Buffer[] = [];
    for (let j = i; j < Math.min(total, i + batch); j++) frames.push(make(j));
    await guest.send(frames);
    if ((i / batch) % 8 === 0) await checked();
  }
  await new Promise((r) => setTimeout(r, 500));
  return checked();
}

test('frames longer than the MTU are dropped and counted, not answered (64 KiB pings, receive side stalled)', async () => {
  guest.stallReceive();
  const s = await flood(4000, (i) => guest.ping(65000, i), 16);
  expect(s.framesOversize).toBe(4000);
  expect(s.linkBacklog).toBe(0);
});

test('pings, ARP and DNS with the NIC receive side stalled: replies past the link cap are dropped and counted', async () => {
  guest.stallReceive();
  const kinds = [(i: number) => guest.ping(1472, i), () => guest.arpRequest(), (i: number) => guest.badDnsQuery(i)];
  const s = await flood(300_000, (i) => kinds[i % 3](i));
  expect(s.framesOutDropped).toBeGreaterThan(0);
  expect(s.linkBacklog).toBeLessThanOrEqual(4 * MiB);
});

test('overlapping out-of-order segments never pile up: held bytes stay within the window', async () => {
  const conns = await guest.open(16, servers.sink);
  expect(conns).toHaveLength(16);
  const payload = Buffer.alloc(1460, 0x63);
  // Every segment skips the next expected byte; each starts one byte after the previous one.
  const s = await flood(16 * 12_000, (i) => {
    const c = conns[i % 16];
    return guest.tcp(c, c.seq + 1 + Math.floor(i / 16), TcpFlags.ACK, payload);
  });
  expect(s.segmentsDropped).toBeGreaterThan(0);
  expect(s.bufferedBytes).toBeLessThanOrEqual(16 * 256 * 1024);
});

test('1024 connections whose guest never acknowledges: host data held is capped in total', async () => {
  const conns = await guest.open(1024, servers.source, 180_000);
  expect(conns.length).toBe(1024);
  // Let the host sockets fill whatever the gateway takes, checking the bound as they do.
  let s = await checked();
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 500));
    s = await checked();
  }
  expect(s.tcpConnections).toBe(1024);
  expect(s.bufferedBytes).toBeLessThanOrEqual(20 * MiB);
});

test('1024 connections filling their windows towards a host that never reads: guest data held is capped in total', async () => {
  const conns = await guest.open(1024, servers.sink, 180_000);
  expect(conns.length).toBe(1024);
  const payload = Buffer.alloc(1460, 0x64);
  let s = await checked();
  // Rounds: every connection sends what its last advertised window allows.
  for (let round = 0; round < 40; round++) {
    const sent = await guest.fillWindows(conns, payload);
    s = await checked();
    if (sent === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(s.bufferedBytes).toBeLessThanOrEqual(20 * MiB);
});

test('4096 connections at once fit; the next one is refused and counted', async () => {
  const conns = await guest.open(4096, servers.sink, 180_000);
  expect(conns.length).toBe(4096);
  const [extra] = await guest.open(1, servers.sink, 2000);
  expect(extra).toBeUndefined();
  const s = await checked();
  expect(s.tcpConnections).toBe(4096);
  expect(s.connectionsRefused).toBe(1);
});

test('datagrams waiting for host sockets past the shared cap are dropped and counted', async () => {
  // This one needs a small cap: a gateway process of its own (afterEach stops it).
  guest.close();
  await gwp.stop();
  gwp = await GatewayProcess.start({ udpSendTotal: 3 * (1400 + PIECE_OVERHEAD) });
  guest = await HostileGuest.connect(gwp.socketPath);
  const host = dgram.createSocket('udp4');
  let received = 0;
  host.on('message', () => received++);
  await new Promise<void>((r) => host.bind(0, '127.0.0.1', r));
  try {
    // One write: the first datagram of a flow waits for its socket's bind, the rest queue behind it.
    await guest.send(Array.from({ length: 10 }, () => guest.udp(host.address().port, Buffer.alloc(1400, 0x65))));
    let s = await gwp.stats();
    for (let i = 0; i < 50 && s.framesIn < 10; i++) {
      await new Promise((r) => setTimeout(r, 100));
      s = await gwp.stats();
    }
    expect(s.datagramsDropped).toBe(7);
    await new Promise((r) => setTimeout(r, 200));
    expect(received).toBe(3);
  } finally {
    host.close();
  }
});
