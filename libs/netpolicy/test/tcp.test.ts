// The TCP state machine against a scripted guest: every segment it emits is inspected.
import { TcpFlags, type TcpHeaderFields, type TcpSegment } from '../src/packets';
import { ByteBudget, PIECE_OVERHEAD } from '../src/budget';
import { TcpConnection, type TcpCloseReason, type TcpOptions } from '../src/tcp';

const { SYN, ACK, FIN, RST, PSH } = TcpFlags;

interface Sent {
  h: TcpHeaderFields;
  payload: Buffer;
}

function harness() {
  const h = {
    sent: [] as Sent[],
    data: [] as Buffer[],
    ended: false,
    established: false,
    drained: 0,
    dropped: 0,
    closed: undefined as TcpCloseReason | undefined,
    events: {
      send: (hdr: TcpHeaderFields, payload?: Buffer) =>
        h.sent.push({ h: { ...hdr }, payload: Buffer.from(payload ?? Buffer.alloc(0)) }),
      onData: (d: Buffer) => h.data.push(Buffer.from(d)),
      onEnd: () => (h.ended = true),
      onEstablished: () => (h.established = true),
      onDrain: () => h.drained++,
      onClose: (r: TcpCloseReason) => (h.closed = r),
      onDropped: () => h.dropped++,
    },
    take(): Sent[] {
      return h.sent.splice(0);
    },
  };
  return h;
}

const seg = (o: Partial<TcpSegment>): TcpSegment => ({
  srcPort: 40000,
  dstPort: 80,
  seq: 0,
  ack: 0,
  flags: ACK,
  window: 65535,
  payload: Buffer.alloc(0),
  ...o,
});
const GUEST_ISN = 1000;

/** A passive open completed; the guest's window field is `window` (scaled by 2^wscale). */
function established(opts: Partial<TcpOptions> = {}, window = 65535, wscale: number | undefined = 2) {
  const h = harness();
  const conn = TcpConnection.fromSyn(seg({ seq: GUEST_ISN, flags: SYN, mss: 1000, wscale }), h.events, {
    timeWaitMs: 5000,
    ...opts,
  });
  expect(h.sent).toHaveLength(0); // nothing until the host side is connected
  conn.acceptSyn();
  const [synAck] = h.take();
  expect(synAck.h.flags).toBe(SYN | ACK);
  expect(synAck.h.ack).toBe(GUEST_ISN + 1);
  expect(synAck.h.mss).toBe(opts.mss ?? 1460);
  const iss = synAck.h.seq;
  conn.handleSegment(seg({ seq: GUEST_ISN + 1, ack: iss + 1, window }));
  expect(conn.state).toBe('ESTABLISHED');
  expect(h.established).toBe(true);
  let guestSeq = GUEST_ISN + 1;
  let hostSeq = iss + 1;
  const guest = {
    send(payload: string | Buffer, flags = ACK | PSH, at = guestSeq): void {
      const p = Buffer.from(payload);
      conn.handleSegment(seg({ seq: at, ack: hostSeq, flags, payload: p }));
      if (at === guestSeq) guestSeq += p.length + (flags & FIN ? 1 : 0);
    },
    ack(ack: number, win = window): void {
      hostSeq = ack;
      conn.handleSegment(seg({ seq: guestSeq, ack, window: win }));
    },
    get seq() {
      return guestSeq;
    },
    set seq(v: number) {
      guestSeq = v;
    },
  };
  return { h, conn, iss, guest };
}

afterEach(() => jest.useRealTimers());

test('handshake: MSS and window scale are negotiated; SYN-ACK is retransmitted if the guest repeats its SYN', () => {
  const h = harness();
  const syn = seg({ seq: 77, flags: SYN, mss: 1200, wscale: 7 });
  const conn = TcpConnection.fromSyn(syn, h.events);
  conn.handleSegment(syn); // retransmitted SYN while the host connects: ignored
  expect(h.sent).toHaveLength(0);
  conn.acceptSyn();
  const [first] = h.take();
  expect(first.h.wscale).toBeGreaterThan(0);
  conn.handleSegment(syn); // our SYN-ACK was lost
  const [again] = h.take();
  expect(again.h).toEqual(first.h);
});

test('no window scale option from the guest: none in the SYN-ACK, windows unscaled', () => {
  const h = harness();
  const conn = TcpConnection.fromSyn(seg({ seq: 1, flags: SYN, mss: 1000 }), h.events);
  conn.acceptSyn();
  expect(h.take()[0].h.wscale).toBeUndefined();
});

test('in-order data is delivered and acknowledged once per batch', () => {
  const { h, conn, guest } = established();
  guest.send('hello ');
  guest.send('world');
  expect(Buffer.concat(h.data).toString()).toBe('hello world');
  expect(h.sent).toHaveLength(0); // the ACK waits for the end of the batch
  conn.flushAck();
  const [ack] = h.take();
  expect(ack.h.ack).toBe(GUEST_ISN + 1 + 11);
  expect(ack.h.flags).toBe(ACK);
});

test('out-of-order segments are buffered, duplicate-ACKed, and delivered once the hole fills', () => {
  const { h, conn, guest } = established();
  const start = guest.seq;
  guest.send('world', ACK, start + 6);
  expect(h.data).toHaveLength(0);
  const [dup] = h.take();
  expect(dup.h.ack).toBe(start); // tells the guest what is missing
  guest.send('hello ', ACK, start);
  guest.seq = start + 11;
  conn.flushAck();
  expect(Buffer.concat(h.data).toString()).toBe('hello world');
  expect(h.take().pop()?.h.ack).toBe(start + 11);
});

test('a retransmission overlapping delivered data yields only the new bytes', () => {
  const { h, guest } = established();
  const start = guest.seq;
  guest.send('abc');
  guest.send('abcdef', ACK, start);
  expect(Buffer.concat(h.data).toString()).toBe('abcdef');
});

test("the guest's window is scaled and bounds what is sent; ACKs open it", () => {
  const { h, conn, iss, guest } = established({}, 1000, 2); // 4000 bytes
  guest.ack(iss + 1, 1000);
  h.take();
  conn.write(Buffer.alloc(10_000, 1));
  const out = h.take();
  expect(out.reduce((n, s) => n + s.payload.length, 0)).toBe(4000);
  expect(Math.max(...out.map((s) => s.payload.length))).toBe(1000); // the guest's MSS
  guest.ack(iss + 1 + 4000, 1000);
  expect(h.take().reduce((n, s) => n + s.payload.length, 0)).toBe(4000);
});

test('unacknowledged data is retransmitted with backoff, then the connection is reset', () => {
  jest.useFakeTimers();
  const { h, conn, iss } = established({ maxRetransmits: 3 });
  conn.write(Buffer.from('payload'));
  const [first] = h.take();
  expect(first.h.seq).toBe(iss + 1);
  jest.advanceTimersByTime(1000);
  const [again] = h.take();
  expect(again.h.seq).toBe(iss + 1);
  expect(again.payload.toString()).toBe('payload');
  jest.advanceTimersByTime(1999);
  expect(h.take()).toHaveLength(0); // doubled timeout
  jest.advanceTimersByTime(1);
  expect(h.take()).toHaveLength(1);
  jest.advanceTimersByTime(4000 + 8000);
  const last = h.take().pop();
  expect((last?.h.flags ?? 0) & RST).toBeTruthy();
  expect(h.closed).toBe('timeout');
});

test('three duplicate ACKs trigger a fast retransmission of the first segment', () => {
  const { h, conn, iss, guest } = established({}, 65535, 2);
  conn.write(Buffer.alloc(5000, 7));
  h.take();
  guest.ack(iss + 1 + 1000);
  h.take();
  for (let i = 0; i < 3; i++) guest.ack(iss + 1 + 1000);
  const re = h.take();
  expect(re).toHaveLength(1);
  expect(re[0].h.seq).toBe(iss + 1 + 1000);
});

test('zero window: probes with backoff, never gives up, resumes when the window opens', () => {
  jest.useFakeTimers();
  const { h, conn, iss, guest } = established();
  guest.ack(iss + 1, 0);
  h.take();
  conn.write(Buffer.from('0123456789'));
  expect(h.take()).toHaveLength(0);
  jest.advanceTimersByTime(1000);
  const [probe] = h.take();
  expect(probe.payload.toString()).toBe('0');
  expect(probe.h.seq).toBe(iss + 1);
  // The guest drops the probe and repeats its zero window, for ten minutes.
  for (let i = 0; i < 30; i++) {
    guest.ack(iss + 1, 0);
    jest.advanceTimersByTime(20_000);
  }
  expect(conn.state).toBe('ESTABLISHED');
  const probes = h.take();
  expect(probes.length).toBeGreaterThan(5);
  expect(probes.length).toBeLessThan(30); // backed off
  guest.ack(iss + 1, 100);
  const data = h.take();
  expect(Buffer.concat(data.map((s) => s.payload)).toString()).toBe('0123456789');
});

test('a full send buffer refuses more until the guest acknowledges (back-pressure)', () => {
  const { h, conn, iss, guest } = established({ sendBuffer: 8000 }, 0, 0);
  guest.ack(iss + 1, 0);
  expect(conn.write(Buffer.alloc(6000))).toBe(true);
  expect(conn.write(Buffer.alloc(6000))).toBe(false);
  guest.ack(iss + 1, 65535);
  const sent = h.take().reduce((n, s) => n + s.payload.length, 0);
  expect(sent).toBe(10_000); // initial congestion window: 10 segments
  expect(h.drained).toBe(0);
  guest.ack(iss + 1 + 10_000, 65535);
  expect(h.drained).toBe(1);
  guest.ack(iss + 1 + 12_000, 65535);
  expect(conn.bufferedBytes).toBe(0);
});

test('our receive window follows the consumer backlog: it closes while the consumer is full, an update reopens it', () => {
  let backlog = 0;
  const { h, conn, guest } = established({ receiveBuffer: 8192, receiveBacklog: () => backlog, mss: 1000 });
  for (let i = 0; i < 8; i++) {
    guest.send(Buffer.alloc(1024));
    backlog += 1024; // the consumer takes nothing
  }
  conn.flushAck();
  const [ack] = h.take();
  expect(ack.h.ack).toBe(GUEST_ISN + 1 + 8192);
  expect(ack.h.window).toBe(0);
  guest.send(Buffer.alloc(100)); // a zero-window probe: dropped, answered with the same ACK
  expect(h.data).toHaveLength(8);
  expect(h.take()[0].h).toEqual(expect.objectContaining({ ack: ack.h.ack, window: 0 }));
  backlog = 0;
  conn.windowMaybeOpened();
  const [update] = h.take();
  expect(update.h).toEqual(expect.objectContaining({ ack: ack.h.ack, window: 8192 }));
});

test('guest closes first: CLOSE_WAIT, our FIN after the data, LAST_ACK, closed', () => {
  const { h, conn, iss, guest } = established();
  guest.send('bye', ACK | FIN);
  expect(h.ended).toBe(true);
  expect(conn.state).toBe('CLOSE_WAIT');
  expect(h.take().pop()?.h.ack).toBe(guest.seq); // FIN acknowledged at once
  conn.write(Buffer.from('still sending')); // half-close: the other direction goes on
  conn.end();
  const out = h.take();
  expect(out[0].payload.toString()).toBe('still sending');
  expect(out[1].h.flags & FIN).toBeTruthy();
  expect(conn.state).toBe('LAST_ACK');
  guest.ack(iss + 1 + 13 + 1);
  expect(h.closed).toBe('closed');
});

test('host closes first: FIN_WAIT_1/2, the guest may still send, TIME_WAIT re-ACKs a repeated FIN, then closes', () => {
  jest.useFakeTimers();
  const { h, conn, iss, guest } = established();
  conn.end();
  expect(h.take()[0].h.flags).toBe(FIN | ACK);
  expect(conn.state).toBe('FIN_WAIT_1');
  guest.ack(iss + 2);
  expect(conn.state).toBe('FIN_WAIT_2');
  guest.send('late data');
  expect(Buffer.concat(h.data).toString()).toBe('late data');
  const finSeq = guest.seq;
  guest.send('', ACK | FIN);
  expect(conn.state).toBe('TIME_WAIT');
  expect(h.take().pop()?.h.ack).toBe(finSeq + 1);
  guest.send('', ACK | FIN, finSeq); // our ACK was lost
  expect(h.take().pop()?.h.ack).toBe(finSeq + 1);
  jest.advanceTimersByTime(5000);
  expect(h.closed).toBe('closed');
});

test('simultaneous close goes through CLOSING', () => {
  const { h, conn, iss, guest } = established();
  conn.end();
  h.take();
  guest.send('', ACK | FIN); // acknowledges nothing of ours yet
  conn.handleSegment(seg({ seq: guest.seq - 1, ack: iss + 1, flags: ACK | FIN }));
  expect(conn.state).toBe('CLOSING');
  guest.ack(iss + 2);
  expect(conn.state).toBe('TIME_WAIT');
});

test('RST in window closes; RST out of window is ignored', () => {
  const { h, conn, guest } = established();
  conn.handleSegment(seg({ seq: guest.seq + 10_000_000, flags: RST }));
  expect(conn.state).toBe('ESTABLISHED');
  conn.handleSegment(seg({ seq: guest.seq, flags: RST }));
  expect(h.closed).toBe('reset');
});

test('reset() sends a RST to the guest', () => {
  const { h, conn } = established();
  conn.reset();
  expect(h.take()[0].h.flags & RST).toBeTruthy();
  expect(h.closed).toBe('aborted');
});

test('refuse() answers the SYN with RST+ACK', () => {
  const h = harness();
  const conn = TcpConnection.fromSyn(seg({ seq: 500, flags: SYN }), h.events);
  conn.refuse();
  expect(h.sent[0].h).toEqual(expect.objectContaining({ flags: RST | ACK, ack: 501 }));
  expect(h.closed).toBe('refused');
});

test('active open (port forward): SYN with options, SYN-ACK completes it, data flows', () => {
  const h = harness();
  const conn = TcpConnection.connect(50000, 8080, h.events);
  const [syn] = h.take();
  expect(syn.h.flags).toBe(SYN);
  expect(syn.h.wscale).toBeDefined();
  conn.handleSegment(
    seg({
      srcPort: 8080,
      dstPort: 50000,
      seq: 9000,
      ack: syn.h.seq + 1,
      flags: SYN | ACK,
      mss: 1400,
      window: 1000,
      wscale: 3,
    }),
  );
  expect(conn.state).toBe('ESTABLISHED');
  expect(h.established).toBe(true);
  const [ack] = h.take();
  expect(ack.h.ack).toBe(9001);
  // The window in a SYN is never scaled; later ones are.
  conn.handleSegment(seg({ srcPort: 8080, dstPort: 50000, seq: 9001, ack: syn.h.seq + 1, window: 1000 }));
  conn.write(Buffer.alloc(20_000));
  // 1000 << 3 = 8000 bytes of window: five 1400-byte segments; the 1000-byte rest waits
  // (sender silly-window avoidance) for the window to move.
  expect(h.take().map((s) => s.payload.length)).toEqual([1400, 1400, 1400, 1400, 1400]);
});

test('active open refused by the guest (RST+ACK)', () => {
  const h = harness();
  const conn = TcpConnection.connect(50000, 8080, h.events);
  const [syn] = h.take();
  conn.handleSegment(seg({ seq: 0, ack: syn.h.seq + 1, flags: RST | ACK }));
  expect(h.closed).toBe('refused');
});

test('active open: the SYN is retransmitted until the guest answers', () => {
  jest.useFakeTimers();
  const h = harness();
  TcpConnection.connect(50000, 8080, h.events);
  const [syn] = h.take();
  jest.advanceTimersByTime(1000);
  expect(h.take()[0].h).toEqual(syn.h);
});

test('overlapping out-of-order segments: only new bytes are held, the stream is delivered intact', () => {
  const { h, conn, guest } = established();
  const base = guest.seq;
  const text = Buffer.from('abcdefghijklmnopqrstuvwxyz0123456789'.repeat(10));
  // Every segment skips the first byte; each starts one byte later and overlaps all before it.
  for (let k = 1; k < 200; k++) guest.send(text.subarray(k, k + 100), ACK, base + k);
  expect(h.data).toHaveLength(0);
  // Held: bytes 1..298 once (plus the first segment's), never 199 copies of them.
  expect(conn.bufferedBytes).toBe(298);
  guest.send(text.subarray(0, 1));
  expect(Buffer.concat(h.data).toString()).toBe(text.subarray(0, 299).toString());
  expect(conn.bufferedBytes).toBe(0);
});

test('out-of-order data past the shared budget is dropped and reported; the hole still fills', () => {
  const budget = new ByteBudget(3 * (100 + PIECE_OVERHEAD));
  const { h, conn, guest } = established({ outOfOrderBudget: budget });
  const base = guest.seq;
  for (let k = 1; k <= 5; k++) guest.send(Buffer.alloc(100, k), ACK, base + k * 100);
  expect(h.dropped).toBe(2);
  expect(budget.inUse).toBe(3 * (100 + PIECE_OVERHEAD));
  guest.send(Buffer.alloc(100, 0));
  expect(Buffer.concat(h.data)).toHaveLength(400); // the hole plus the three pieces held
  expect(budget.inUse).toBe(0);
  conn.destroy();
});

test('host data is charged to the shared send budget and released as the guest acknowledges it', () => {
  const budget = new ByteBudget(1 << 20);
  const { conn, iss, guest } = established({ sendBudget: budget });
  conn.write(Buffer.alloc(1000));
  conn.write(Buffer.alloc(500));
  expect(budget.inUse).toBe(1500 + 2 * PIECE_OVERHEAD);
  guest.ack(iss + 1 + 1000);
  expect(budget.inUse).toBe(500 + PIECE_OVERHEAD);
  conn.destroy();
  expect(budget.inUse).toBe(0);
});
