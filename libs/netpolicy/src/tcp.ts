// One TCP connection terminated in the gateway, the guest being the peer. Pure protocol: it
// consumes parsed segments and emits segment headers + payload through `send`; the gateway turns
// those into frames and relays the byte stream to a host socket. RFC 793/9293 state machine with
// RFC 7323 window scaling, RFC 6298 retransmission timer (Karn), RFC 5681 congestion control
// (slow start, congestion avoidance, fast retransmit), zero-window probes (persist timer),
// out-of-order reassembly, half-close and TIME_WAIT. No SACK, no timestamps: the link is a
// virtual wire on the same machine, where losses are rare.
import { PIECE_OVERHEAD, type ByteBudget } from './budget';
import { TcpFlags, type TcpHeaderFields, type TcpSegment } from './packets';

export type TcpState =
  | 'SYN_SENT'
  | 'SYN_RECEIVED'
  | 'ESTABLISHED'
  | 'FIN_WAIT_1'
  | 'FIN_WAIT_2'
  | 'CLOSING'
  | 'TIME_WAIT'
  | 'CLOSE_WAIT'
  | 'LAST_ACK'
  | 'CLOSED';

/** Why a connection ended: 'closed' is the orderly end of both directions. */
export type TcpCloseReason = 'closed' | 'reset' | 'refused' | 'timeout' | 'aborted';

export interface TcpOptions {
  /** Largest segment we accept (advertised MSS) and send. */
  mss: number;
  /** Receive buffer: the most data from the guest we hold before the host socket takes it. */
  receiveBuffer: number;
  /** Send buffer: the most data from the host we hold until the guest acknowledges it. */
  sendBuffer: number;
  timeWaitMs: number;
  /** Give up after this many consecutive retransmissions of the same data. */
  maxRetransmits: number;
  /** Bytes delivered by onData that the consumer has not taken yet (counts against our window). */
  receiveBacklog?: () => number;
  /** False while the link to the guest is congested: new data waits, retransmissions too. */
  canSend?: () => boolean;
  /**
   * Shared caps across connections (bytes plus PIECE_OVERHEAD per piece): out-of-order data held,
   * data from the host held, and in-order data from the guest that the consumer holds (charged by
   * the consumer; here it only narrows the window and gates admission).
   */
  outOfOrderBudget?: ByteBudget;
  sendBudget?: ByteBudget;
  receiveBudget?: ByteBudget;
}

export interface TcpEvents {
  /** Emits one segment towards the guest. */
  send(h: TcpHeaderFields, payload?: Buffer): void;
  onEstablished?(): void;
  /** In-order bytes from the guest. */
  onData?(data: Buffer): void;
  /** The guest closed its sending direction (FIN, in order). */
  onEnd?(): void;
  /** Send-buffer space freed after being full: the host side may resume. */
  onDrain?(): void;
  /** The connection is gone (after TIME_WAIT for an orderly close). */
  onClose?(reason: TcpCloseReason): void;
  /** Guest data was dropped unacknowledged: holding it would pass a memory cap (it retransmits). */
  onDropped?(): void;
}

export const DEFAULT_TCP_OPTIONS: TcpOptions = {
  mss: 1460,
  receiveBuffer: 256 * 1024,
  sendBuffer: 256 * 1024,
  timeWaitMs: 10_000,
  maxRetransmits: 12,
};

const INITIAL_RTO = 1000;
const MIN_RTO = 200;
const MAX_RTO = 60_000;
const DEFAULT_PEER_MSS = 536;

// Sequence-space comparisons (mod 2^32).
export const seqLt = (a: number, b: number): boolean => ((a - b) | 0) < 0;
export const seqLe = (a: number, b: number): boolean => ((a - b) | 0) <= 0;
export const seqGt = (a: number, b: number): boolean => ((a - b) | 0) > 0;
export const seqGe = (a: number, b: number): boolean => ((a - b) | 0) >= 0;
const add = (a: number, n: number): number => (a + n) >>> 0;
const diff = (a: number, b: number): number => (a - b) | 0;

/** Out-of-order data: pieces never overlap, each charged its bytes + PIECE_OVERHEAD. */
interface OooSegment {
  seq: number;
  data: Buffer;
  fin: boolean;
}

export class TcpConnection {
  state: TcpState;
  readonly localPort: number;
  readonly remotePort: number;

  // Send sequence space.
  private readonly iss: number;
  private sndUna: number;
  private sndNxt: number;
  /** Highest sequence number sent (go-back-N rewinds sndNxt, not this). */
  private sndMax: number;
  private sndWnd = 0;
  private maxSndWnd = 0;
  private sndWl1 = 0;
  private sndWl2 = 0;
  private sndScale = 0;
  private sndMss: number;
  private cwnd: number;
  private ssthresh = 0x7fffffff;
  private dupAcks = 0;

  // Unacknowledged + unsent data from the host, starting at sndUna.
  private sndBuf: Buffer[] = [];
  private sndBufBytes = 0;
  /** sndBufBytes + PIECE_OVERHEAD per chunk: what the send buffer costs (and the send budget carries). */
  private sndCharge = 0;
  private sndBlocked = false;
  /** The host side finished: a FIN follows the data. */
  private finQueued = false;
  private finSent = false;

  // Receive sequence space.
  private irs = 0;
  private rcvNxt = 0;
  /** Right edge of the window we last advertised (never moved left). */
  private rcvAdv = 0;
  private readonly rcvScale: number;
  private wsEnabled = false;
  private ooo: OooSegment[] = [];
  private oooBytes = 0;
  private oooCharge = 0;
  private ackPending = false;
  private finReceived = false;

  // Timers.
  private rto = INITIAL_RTO;
  private srtt = 0;
  private rttvar = 0;
  private rttSeq: number | undefined;
  private rttStart = 0;
  private retransmits = 0;
  private rtxTimer: NodeJS.Timeout | undefined;
  private persistTimer: NodeJS.Timeout | undefined;
  private persistBackoff = 0;
  private timeWaitTimer: NodeJS.Timeout | undefined;
  private closeReason: TcpCloseReason | undefined;

  private readonly opts: TcpOptions;

  private constructor(
    localPort: number,
    remotePort: number,
    state: TcpState,
    events: TcpEvents,
    opts: Partial<TcpOptions>,
  ) {
    this.localPort = localPort;
    this.remotePort = remotePort;
    this.state = state;
    this.events = events;
    this.opts = { ...DEFAULT_TCP_OPTIONS, ...opts };
    this.iss = (Math.random() * 0x100000000) >>> 0;
    this.sndUna = this.iss;
    this.sndNxt = this.iss;
    this.sndMax = this.iss;
    this.sndMss = Math.min(DEFAULT_PEER_MSS, this.opts.mss);
    this.cwnd = 10 * this.opts.mss;
    // Smallest shift that lets the 16-bit field express the whole receive buffer.
    let scale = 0;
    while (scale < 14 && 0xffff << scale < this.opts.receiveBuffer) scale++;
    this.rcvScale = scale;
  }

  private readonly events: TcpEvents;

  /** Passive open from the guest's SYN. Call acceptSyn() once the host side is ready. */
  static fromSyn(syn: TcpSegment, events: TcpEvents, opts: Partial<TcpOptions> = {}): TcpConnection {
    const c = new TcpConnection(syn.dstPort, syn.srcPort, 'SYN_RECEIVED', events, opts);
    c.irs = syn.seq;
    c.rcvNxt = add(syn.seq, 1);
    c.rcvAdv = c.rcvNxt;
    c.applySynOptions(syn);
    c.sndWnd = syn.window; // never scaled in a SYN
    c.maxSndWnd = c.sndWnd;
    return c;
  }

  /** Active open towards the guest (port forwarding): sends the SYN now. */
  static connect(
    localPort: number,
    remotePort: number,
    events: TcpEvents,
    opts: Partial<TcpOptions> = {},
  ): TcpConnection {
    const c = new TcpConnection(localPort, remotePort, 'SYN_SENT', events, opts);
    c.sendSyn();
    return c;
  }

  /** Sends the SYN-ACK of a passive open (the host connection succeeded). */
  acceptSyn(): void {
    if (this.state !== 'SYN_RECEIVED' || seqGt(this.sndMax, this.iss)) return;
    this.sendSyn();
  }

  get bufferedBytes(): number {
    return this.sndBufBytes + this.oooBytes;
  }

  /** True while the send buffer is full (write() said so and it has not drained since). */
  get sendBlocked(): boolean {
    return this.sndBlocked;
  }

  get closed(): boolean {
    return this.state === 'CLOSED';
  }

  /** Queues host data for the guest. False when the send buffer is full: pause the source. */
  write(data: Buffer): boolean {
    if (this.finQueued || this.state === 'CLOSED') return false;
    if (data.length > 0) {
      this.sndBuf.push(data);
      this.sndBufBytes += data.length;
      this.sndCharge += data.length + PIECE_OVERHEAD;
      this.opts.sendBudget?.take(data.length + PIECE_OVERHEAD);
      this.output();
    }
    const ok = this.sndCharge < this.opts.sendBuffer;
    if (!ok) this.sndBlocked = true;
    return ok;
  }

  /** The host side finished sending: FIN after the queued data (half-close). */
  end(): void {
    if (this.finQueued || this.state === 'CLOSED') return;
    this.finQueued = true;
    this.output();
  }

  /** Aborts with a RST to the guest. */
  reset(): void {
    if (this.state === 'CLOSED') return;
    if (this.state !== 'SYN_SENT' && this.state !== 'TIME_WAIT') {
      this.emit(TcpFlags.RST | TcpFlags.ACK, this.sndNxt);
    }
    this.finish('aborted');
  }

  /** Refuses a passive open (host connection failed or policy denied). */
  refuse(): void {
    if (this.state !== 'SYN_RECEIVED') return this.reset();
    this.events.send({
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seq: 0,
      ack: this.rcvNxt,
      flags: TcpFlags.RST | TcpFlags.ACK,
      window: 0,
    });
    this.finish('refused');
  }

  /** Drops all state silently (the gateway is closing). */
  destroy(): void {
    this.finish('aborted');
  }

  /** The consumer took data from its backlog: advertise the room if it matters. */
  windowMaybeOpened(): void {
    if (!this.isSynchronized() || this.finReceived) return;
    const room = this.freeWindow();
    const edge = add(this.rcvNxt, room);
    const grown = diff(edge, this.rcvAdv);
    if (
      grown >= Math.min(this.opts.receiveBuffer / 2, 2 * this.opts.mss) ||
      (diff(this.rcvAdv, this.rcvNxt) < this.opts.mss && grown > 0)
    ) {
      this.sendAck();
    }
  }

  /** Sends the ACK owed for data received in the last batch of frames. */
  flushAck(): void {
    if (this.ackPending && this.state !== 'CLOSED') this.sendAck();
  }

  /** The link to the guest can take frames again. */
  resume(): void {
    this.output();
  }

  // ---- input ----

  handleSegment(seg: TcpSegment): void {
    const f = seg.flags;
    if (this.state === 'CLOSED') return;
    if (this.state === 'SYN_SENT') return this.handleSynSent(seg);

    // SYN_RECEIVED before acceptSyn(): the guest retransmits its SYN while the host connects,
    // or gives up.
    if (this.state === 'SYN_RECEIVED' && this.sndMax === this.iss) {
      if (f & TcpFlags.RST && seg.seq === this.rcvNxt) this.finish('reset');
      return;
    }

    const len = seg.payload.length + (f & TcpFlags.SYN ? 1 : 0) + (f & TcpFlags.FIN ? 1 : 0);
    if (!this.acceptable(seg.seq, len)) {
      if (this.state === 'SYN_RECEIVED' && f & TcpFlags.SYN && seg.seq === this.irs) {
        this.retransmitSyn(); // our SYN-ACK was lost
      } else if (!(f & TcpFlags.RST)) {
        this.sendAck();
      }
      return;
    }
    if (f & TcpFlags.RST) return this.finish(this.state === 'SYN_RECEIVED' ? 'refused' : 'reset');
    if (f & TcpFlags.SYN) {
      // A SYN inside the window of a synchronized connection: RFC 5961 challenge ACK.
      this.sendAck();
      return;
    }
    if (!(f & TcpFlags.ACK)) return;

    if (this.state === 'SYN_RECEIVED') {
      if (seqGt(seg.ack, this.sndUna) && seqLe(seg.ack, this.sndMax)) {
        this.state = 'ESTABLISHED';
        this.sndWl1 = seg.seq;
        this.sndWl2 = seg.ack;
        this.sndWnd = seg.window << this.sndScale;
        this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd);
        this.sndUna = seg.ack;
        this.ackedSomething();
        this.events.onEstablished?.();
        if (this.closed) return;
      } else {
        this.sendRst(seg.ack);
        return;
      }
    }

    this.processAck(seg);
    if (this.closed) return;

    if (seg.payload.length > 0 || f & TcpFlags.FIN) this.processData(seg);
    this.output();
  }

  private handleSynSent(seg: TcpSegment): void {
    const f = seg.flags;
    if (f & TcpFlags.ACK && (seqLe(seg.ack, this.iss) || seqGt(seg.ack, this.sndMax))) {
      if (!(f & TcpFlags.RST)) this.sendRst(seg.ack);
      return;
    }
    if (f & TcpFlags.RST) {
      if (f & TcpFlags.ACK) this.finish('refused');
      return;
    }
    if (!(f & TcpFlags.SYN) || !(f & TcpFlags.ACK)) return; // simultaneous open: not for a gateway
    this.irs = seg.seq;
    this.rcvNxt = add(seg.seq, 1);
    this.rcvAdv = this.rcvNxt;
    this.applySynOptions(seg);
    this.sndUna = seg.ack;
    this.sndWnd = seg.window;
    this.maxSndWnd = this.sndWnd;
    this.sndWl1 = seg.seq;
    this.sndWl2 = seg.ack;
    this.state = 'ESTABLISHED';
    this.ackedSomething();
    this.sendAck();
    this.events.onEstablished?.();
    this.output();
  }

  private applySynOptions(syn: TcpSegment): void {
    this.sndMss = Math.min(syn.mss ?? DEFAULT_PEER_MSS, this.opts.mss);
    this.cwnd = 10 * this.sndMss;
    if (syn.wscale !== undefined) {
      this.wsEnabled = true;
      this.sndScale = syn.wscale;
    }
  }

  /** RFC 793 acceptability test against the window we advertised. */
  private acceptable(seq: number, len: number): boolean {
    const wnd = Math.max(0, diff(this.rcvAdv, this.rcvNxt));
    if (len === 0)
      return wnd === 0 ? seq === this.rcvNxt : seqGe(seq, this.rcvNxt) && seqLt(seq, add(this.rcvNxt, wnd));
    if (wnd === 0) return false;
    const end = add(seq, len - 1);
    const inWindow = (s: number): boolean => seqGe(s, this.rcvNxt) && seqLt(s, add(this.rcvNxt, wnd));
    // Also accept segments that overlap data we have (retransmissions with new bytes).
    return inWindow(seq) || inWindow(end) || (seqLt(seq, this.rcvNxt) && seqGt(end, this.rcvNxt));
  }

  private processAck(seg: TcpSegment): void {
    const ack = seg.ack;
    if (seqGt(ack, this.sndMax)) {
      this.sendAck(); // acks something never sent
      return;
    }
    const window = seg.window << this.sndScale;
    if (seqGt(ack, this.sndUna)) {
      let acked = diff(ack, this.sndUna);
      const finAcked = this.finSent && ack === this.sndMax;
      if (finAcked) acked -= 1;
      this.consumeSendBuffer(Math.min(acked, this.sndBufBytes));
      this.sndUna = ack;
      if (seqLt(this.sndNxt, ack)) this.sndNxt = ack;
      if (this.rttSeq !== undefined && seqGe(ack, this.rttSeq)) {
        this.rttSample(Date.now() - this.rttStart);
        this.rttSeq = undefined;
      }
      // Congestion window: slow start, then about one MSS per round trip.
      if (this.dupAcks >= 3) this.cwnd = this.ssthresh;
      else if (this.cwnd < this.ssthresh) this.cwnd += Math.min(acked, this.sndMss);
      else this.cwnd += Math.max(1, Math.floor((this.sndMss * this.sndMss) / this.cwnd));
      this.dupAcks = 0;
      this.ackedSomething();
      if (finAcked) this.ourFinAcked();
      if (this.state === 'CLOSED') return;
    } else if (
      ack === this.sndUna &&
      seg.payload.length === 0 &&
      !(seg.flags & TcpFlags.FIN) &&
      window === this.sndWnd &&
      window > 0 &&
      this.sndMax !== this.sndUna
    ) {
      if (++this.dupAcks === 3) {
        this.ssthresh = Math.max(Math.floor(this.flight() / 2), 2 * this.sndMss);
        this.cwnd = this.ssthresh + 3 * this.sndMss;
        this.retransmitOne();
      } else if (this.dupAcks > 3) {
        this.cwnd += this.sndMss;
      }
    }
    // Window update (RFC 793 SND.WL1/WL2 rule: only from newer segments).
    if (seqLt(this.sndWl1, seg.seq) || (this.sndWl1 === seg.seq && seqLe(this.sndWl2, ack))) {
      // Leaving a zero window: whatever went past it (probes) was dropped; send from the ACK.
      if (this.sndWnd === 0 && window > 0 && seqGt(this.sndNxt, this.sndUna)) this.sndNxt = this.sndUna;
      this.sndWnd = window;
      this.maxSndWnd = Math.max(this.maxSndWnd, window);
      this.sndWl1 = seg.seq;
      this.sndWl2 = ack;
      if (window > 0) this.stopPersist();
    }
  }

  private ourFinAcked(): void {
    switch (this.state) {
      case 'FIN_WAIT_1':
        this.state = 'FIN_WAIT_2';
        break;
      case 'CLOSING':
        this.enterTimeWait();
        break;
      case 'LAST_ACK':
        this.finish('closed');
        break;
      default:
        break;
    }
  }

  private processData(seg: TcpSegment): void {
    if (
      this.finReceived ||
      !(this.state === 'ESTABLISHED' || this.state === 'FIN_WAIT_1' || this.state === 'FIN_WAIT_2')
    ) {
      if (seg.payload.length > 0 || seg.flags & TcpFlags.FIN) this.sendAck();
      return;
    }
    let seq = seg.seq;
    let data = seg.payload;
    let fin = (seg.flags & TcpFlags.FIN) !== 0;
    // Trim to the advertised window: bytes past it are dropped (the guest retransmits them).
    const wndEnd = this.rcvAdv;
    if (seqGt(add(seq, data.length), wndEnd)) {
      data = data.subarray(0, Math.max(0, diff(wndEnd, seq)));
      fin = false;
    }
    if (seqLt(seq, this.rcvNxt)) {
      const skip = diff(this.rcvNxt, seq);
      if (skip > data.length) {
        this.sendAck();
        return;
      }
      data = data.subarray(skip);
      seq = this.rcvNxt;
    }
    if (seq !== this.rcvNxt) {
      this.storeOutOfOrder(seq, data, fin);
      this.sendAck(); // duplicate ACK tells the guest what is missing
      return;
    }
    if (data.length > 0 && !this.admitInOrder(data.length)) {
      this.events.onDropped?.();
      this.sendAck();
      return;
    }
    this.deliver(data, fin);
    while (this.ooo.length > 0 && seqLe(this.ooo[0].seq, this.rcvNxt) && !this.finReceived) {
      const next = this.ooo.shift() as OooSegment;
      this.oooBytes -= next.data.length;
      this.releaseOoo(next.data.length + PIECE_OVERHEAD);
      const skip = diff(this.rcvNxt, next.seq);
      if (skip <= next.data.length) this.deliver(next.data.subarray(skip), next.fin);
    }
    // Out-of-order data filled a hole: acknowledge at once, not at the end of the batch.
    this.ackPending = true;
    if (this.finReceived) this.sendAck();
  }

  private deliver(data: Buffer, fin: boolean): void {
    if (data.length > 0) {
      this.rcvNxt = add(this.rcvNxt, data.length);
      this.events.onData?.(data);
      if (this.state === 'CLOSED') return;
    }
    if (fin) {
      this.rcvNxt = add(this.rcvNxt, 1);
      this.finReceived = true;
      this.dropOutOfOrder();
      switch (this.state) {
        case 'ESTABLISHED':
          this.state = 'CLOSE_WAIT';
          break;
        case 'FIN_WAIT_1':
          // Our FIN not acknowledged yet (processAck ran first): simultaneous close.
          this.state = 'CLOSING';
          break;
        case 'FIN_WAIT_2':
          this.enterTimeWait();
          break;
        default:
          break;
      }
      this.events.onEnd?.();
    }
  }

  /**
   * Keeps a segment that arrived ahead of a hole: only its first stretch of bytes not held yet
   * (pieces never overlap, and are never copied again), so what is held stays within the window.
   * That stretch must fit this connection's share and the shared budget, else it is dropped; the
   * guest resends whatever was not kept.
   */
  private storeOutOfOrder(seq: number, data: Buffer, fin: boolean): void {
    const ooo = this.ooo;
    const first = seq;
    const end = add(seq, data.length);
    // Index of the first piece starting after seq, moving seq past the pieces that cover it.
    let lo = 0;
    let hi = ooo.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (seqLe(ooo[mid].seq, seq)) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) {
      const prevEnd = add(ooo[lo - 1].seq, ooo[lo - 1].data.length);
      if (seqGt(prevEnd, seq)) seq = prevEnd;
    }
    while (lo < ooo.length && seqLe(ooo[lo].seq, seq)) {
      const pieceEnd = add(ooo[lo].seq, ooo[lo].data.length);
      if (seqGt(pieceEnd, seq)) seq = pieceEnd;
      lo++;
    }
    if (seqGt(seq, end) || (seq === end && !fin)) return; // nothing new
    let stop = end;
    if (lo < ooo.length && seqLt(ooo[lo].seq, stop)) {
      stop = ooo[lo].seq;
      fin = false;
    }
    const length = diff(stop, seq);
    if (length === 0 && !fin) return;
    const charge = length + PIECE_OVERHEAD;
    const budget = this.opts.outOfOrderBudget;
    if (this.oooCharge + charge > 2 * this.opts.receiveBuffer || (budget && !budget.tryTake(charge))) {
      this.events.onDropped?.();
      return;
    }
    // Copy into an allocation of its own: the frame is a view into a large chunk of the link.
    const copy = Buffer.allocUnsafeSlow(length);
    data.copy(copy, 0, diff(seq, first), diff(stop, first));
    ooo.splice(lo, 0, { seq, data: copy, fin });
    this.oooBytes += length;
    this.oooCharge += charge;
  }

  private releaseOoo(charge: number): void {
    this.oooCharge -= charge;
    this.opts.outOfOrderBudget?.release(charge);
  }

  private dropOutOfOrder(): void {
    this.ooo = [];
    this.oooBytes = 0;
    this.releaseOoo(this.oooCharge);
  }

  /** In-order data is delivered only if the consumer's backlog stays within its share and the shared budget. */
  private admitInOrder(length: number): boolean {
    const charge = length + PIECE_OVERHEAD;
    const backlog = this.opts.receiveBacklog?.() ?? 0;
    if (backlog + charge > 2 * this.opts.receiveBuffer) return false;
    const budget = this.opts.receiveBudget;
    return !budget || budget.free >= charge;
  }

  // ---- output ----

  private isSynchronized(): boolean {
    return this.state !== 'SYN_SENT' && this.state !== 'SYN_RECEIVED' && this.state !== 'CLOSED';
  }

  private freeWindow(): number {
    const backlog = this.opts.receiveBacklog?.() ?? 0;
    const room = Math.max(0, this.opts.receiveBuffer - backlog - this.oooBytes);
    const budget = this.opts.receiveBudget;
    if (!budget || budget.free >= room) return room;
    // The shared budget is short: offer what is left and speak up once it has room again.
    budget.wait(this.budgetWake);
    return budget.free;
  }

  private readonly budgetWake = (): void => this.windowMaybeOpened();

  /** The window field to send; the right edge never moves left (RFC 9293 3.8.6). */
  private windowField(): number {
    let room = this.freeWindow();
    // Receiver silly-window avoidance: do not advertise a sliver.
    if (room < Math.min(this.opts.receiveBuffer / 4, this.opts.mss)) room = 0;
    const scale = this.wsEnabled ? this.rcvScale : 0;
    let field = Math.min(0xffff, room >>> scale);
    const promised = Math.max(0, diff(this.rcvAdv, this.rcvNxt));
    if (field << scale < promised) field = Math.min(0xffff, Math.ceil(promised / (1 << scale)));
    this.rcvAdv = add(this.rcvNxt, field << scale);
    return field;
  }

  private emit(flags: number, seq: number, payload?: Buffer): void {
    const synchronized = this.state !== 'SYN_SENT';
    const h: TcpHeaderFields = {
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seq,
      ack: synchronized ? this.rcvNxt : 0,
      flags: synchronized ? flags | TcpFlags.ACK : flags,
      window: flags & TcpFlags.RST ? 0 : this.windowField(),
    };
    if (flags & TcpFlags.ACK || synchronized) this.ackPending = false;
    this.events.send(h, payload);
  }

  private sendAck(): void {
    if (this.state === 'CLOSED' || this.state === 'SYN_SENT') return;
    this.emit(TcpFlags.ACK, this.sndNxt);
  }

  private sendRst(seq: number): void {
    this.events.send({
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seq,
      ack: 0,
      flags: TcpFlags.RST,
      window: 0,
    });
  }

  private sendSyn(): void {
    const passive = this.state === 'SYN_RECEIVED';
    const h: TcpHeaderFields = {
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seq: this.iss,
      ack: passive ? this.rcvNxt : 0,
      flags: passive ? TcpFlags.SYN | TcpFlags.ACK : TcpFlags.SYN,
      window: Math.min(0xffff, this.opts.receiveBuffer),
      mss: this.opts.mss,
      // Offer scaling on an active open; answer it only if the guest offered it.
      wscale: !passive || this.wsEnabled ? this.rcvScale : undefined,
    };
    this.rcvAdv = add(this.rcvNxt, h.window);
    this.sndNxt = add(this.iss, 1);
    this.sndMax = this.sndNxt;
    if (this.rttSeq === undefined && this.retransmits === 0) {
      this.rttSeq = this.sndNxt;
      this.rttStart = Date.now();
    }
    this.events.send(h);
    this.armRetransmit();
  }

  private retransmitSyn(): void {
    this.sndNxt = this.iss;
    this.sendSyn();
  }

  private flight(): number {
    return diff(this.sndMax, this.sndUna);
  }

  /** Sends what the windows allow, then a FIN once everything is out. */
  private output(): void {
    if (!this.isSynchronized() || this.state === 'TIME_WAIT') return;
    if (this.opts.canSend && !this.opts.canSend()) return;
    const dataSent = diff(this.sndNxt, this.sndUna) - (this.finSent && this.sndNxt === this.sndMax ? 1 : 0);
    let offset = Math.max(0, dataSent);
    const wnd = Math.min(this.sndWnd, this.cwnd);
    let usable = wnd - diff(this.sndNxt, this.sndUna);
    while (offset < this.sndBufBytes && usable > 0) {
      const unsent = this.sndBufBytes - offset;
      const len = Math.min(this.sndMss, unsent, usable);
      // Sender silly-window avoidance: no small segment while bigger ones are coming.
      if (len < this.sndMss && len < unsent && len < this.maxSndWnd / 2) break;
      const payload = this.peek(offset, len);
      const push = len === unsent ? TcpFlags.PSH : 0;
      const seq = this.sndNxt;
      this.sndNxt = add(this.sndNxt, len);
      if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
      if (this.rttSeq === undefined && this.retransmits === 0) {
        this.rttSeq = this.sndNxt;
        this.rttStart = Date.now();
      }
      this.emit(TcpFlags.ACK | push, seq, payload);
      this.armRetransmit(false);
      offset += len;
      usable -= len;
      if (this.opts.canSend && !this.opts.canSend()) return;
    }
    if (this.finQueued && offset >= this.sndBufBytes && (!this.finSent || this.sndNxt !== this.sndMax)) {
      if (this.state === 'ESTABLISHED') this.state = 'FIN_WAIT_1';
      else if (this.state === 'CLOSE_WAIT') this.state = 'LAST_ACK';
      if (this.state === 'FIN_WAIT_1' || this.state === 'LAST_ACK' || this.state === 'CLOSING') {
        const seq = this.sndNxt;
        this.sndNxt = add(this.sndNxt, 1);
        if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
        this.finSent = true;
        this.emit(TcpFlags.FIN | TcpFlags.ACK, seq);
        this.armRetransmit(false);
      }
    }
    // Data waiting behind a zero window and nothing in flight: only probes will reopen it.
    if (this.sndWnd === 0 && offset < this.sndBufBytes && this.sndMax === this.sndUna) this.startPersist();
  }

  private peek(offset: number, len: number): Buffer {
    let i = 0;
    while (offset >= this.sndBuf[i].length) offset -= this.sndBuf[i++].length;
    const first = this.sndBuf[i];
    if (offset + len <= first.length) return first.subarray(offset, offset + len);
    const out = Buffer.allocUnsafe(len);
    let copied = first.copy(out, 0, offset);
    while (copied < len) copied += this.sndBuf[++i].copy(out, copied, 0, len - copied);
    return out;
  }

  private consumeSendBuffer(n: number): void {
    this.sndBufBytes -= n;
    let released = n;
    while (n > 0) {
      const head = this.sndBuf[0];
      if (head.length <= n) {
        n -= head.length;
        this.sndBuf.shift();
        released += PIECE_OVERHEAD;
      } else {
        this.sndBuf[0] = head.subarray(n);
        n = 0;
      }
    }
    this.sndCharge -= released;
    this.opts.sendBudget?.release(released);
    if (this.sndBlocked && this.sndCharge < this.opts.sendBuffer / 2) {
      this.sndBlocked = false;
      this.events.onDrain?.();
    }
  }

  // ---- timers ----

  private rttSample(ms: number): void {
    if (this.srtt === 0) {
      this.srtt = ms;
      this.rttvar = ms / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - ms);
      this.srtt = 0.875 * this.srtt + 0.125 * ms;
    }
    this.rto = Math.min(MAX_RTO, Math.max(MIN_RTO, this.srtt + Math.max(10, 4 * this.rttvar)));
  }

  private ackedSomething(): void {
    this.retransmits = 0;
    if (this.sndMax === this.sndUna) this.clearRetransmit();
    else this.armRetransmit(true);
  }

  private armRetransmit(restart = true): void {
    if (this.rtxTimer && !restart) return;
    this.clearRetransmit();
    const timer = setTimeout(() => this.onRetransmitTimeout(), Math.min(MAX_RTO, this.rto * 2 ** this.retransmits));
    timer.unref();
    this.rtxTimer = timer;
  }

  private clearRetransmit(): void {
    if (this.rtxTimer) clearTimeout(this.rtxTimer);
    this.rtxTimer = undefined;
  }

  private onRetransmitTimeout(): void {
    this.rtxTimer = undefined;
    if (this.state === 'CLOSED' || this.sndMax === this.sndUna) return;
    if (this.sndWnd === 0 && this.isSynchronized()) {
      // The guest closed its window: nothing was lost, it is not reading. Probe, never give up.
      this.sndNxt = this.sndUna;
      this.startPersist();
      return;
    }
    if (++this.retransmits > this.opts.maxRetransmits) {
      if (this.state !== 'SYN_SENT') this.emit(TcpFlags.RST | TcpFlags.ACK, this.sndNxt);
      this.finish('timeout');
      return;
    }
    this.rttSeq = undefined; // Karn: no samples from retransmitted data
    if (this.state === 'SYN_SENT' || this.state === 'SYN_RECEIVED') {
      this.retransmitSyn();
      return;
    }
    this.ssthresh = Math.max(Math.floor(this.flight() / 2), 2 * this.sndMss);
    this.cwnd = this.sndMss;
    // Go-back-N from the oldest unacknowledged byte; slow start paces the rest.
    this.sndNxt = this.sndUna;
    this.retransmitOne();
    this.sndNxt = add(this.sndUna, Math.min(this.sndMss, this.sndBufBytes));
    if (this.sndBufBytes === 0 && this.finSent) this.sndNxt = this.sndMax;
  }

  /** Fast retransmit: the oldest unacknowledged segment, once. */
  private retransmitOne(): void {
    if (this.sndBufBytes > 0)
      this.emit(TcpFlags.ACK, this.sndUna, this.peek(0, Math.min(this.sndMss, this.sndBufBytes)));
    else if (this.finSent) this.emit(TcpFlags.FIN | TcpFlags.ACK, this.sndUna);
    this.armRetransmit(true);
  }

  private startPersist(): void {
    if (this.persistTimer) return;
    const delay = Math.min(MAX_RTO, Math.max(this.rto, MIN_RTO) * 2 ** this.persistBackoff);
    const timer = setTimeout(() => {
      this.persistTimer = undefined;
      if (this.state === 'CLOSED' || this.sndWnd > 0) return;
      this.persistBackoff = Math.min(this.persistBackoff + 1, 8);
      this.sendProbe();
      this.startPersist();
    }, delay);
    timer.unref();
    this.persistTimer = timer;
  }

  private stopPersist(): void {
    if (this.persistTimer) clearTimeout(this.persistTimer);
    this.persistTimer = undefined;
    this.persistBackoff = 0;
  }

  /** Zero-window probe: one new byte past the window; the answer carries the current window. */
  private sendProbe(): void {
    if (this.sndBufBytes === 0) return;
    this.sndNxt = add(this.sndUna, 1);
    if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
    this.emit(TcpFlags.ACK, this.sndUna, this.peek(0, 1));
  }

  private enterTimeWait(): void {
    this.state = 'TIME_WAIT';
    this.clearRetransmit();
    this.stopPersist();
    const timer = setTimeout(() => this.finish('closed'), this.opts.timeWaitMs);
    timer.unref();
    this.timeWaitTimer = timer;
  }

  private finish(reason: TcpCloseReason): void {
    if (this.state === 'CLOSED') return;
    this.state = 'CLOSED';
    this.closeReason = reason;
    this.clearRetransmit();
    this.stopPersist();
    if (this.timeWaitTimer) clearTimeout(this.timeWaitTimer);
    this.sndBuf = [];
    this.sndBufBytes = 0;
    this.opts.sendBudget?.release(this.sndCharge);
    this.sndCharge = 0;
    this.dropOutOfOrder();
    this.opts.receiveBudget?.unwait(this.budgetWake);
    this.events.onClose?.(reason);
  }

  get reason(): TcpCloseReason | undefined {
    return this.closeReason;
  }

  /** True when a new SYN for this 4-tuple may replace the connection (RFC 6191 spirit). */
  canBeReplacedBy(syn: TcpSegment): boolean {
    return this.state === 'TIME_WAIT' && seqGt(syn.seq, this.rcvNxt);
  }
}
