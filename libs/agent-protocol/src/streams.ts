// One direction of a multiplexed stream, with credit-based flow control: a sender may have at
// most `window` unacknowledged bytes in flight; the receiver grants more as its reader
// consumes. Neither end ever buffers more than one window per stream, however slow the reader.
import { Readable, Writable } from 'node:stream';

const OUTBOUND_BUFFER = 256 * 1024;

/** What a stream needs from its connection. */
export interface StreamLink {
  sendData(id: number, chunk: Buffer): void;
  sendEof(id: number): void;
  sendCredit(id: number, n: number): void;
  sendClose(id: number): void;
  /** True while the channel's write buffer is full. */
  readonly blocked: boolean;
  /** Calls `fn` once the channel can take writes again (at once if it can now). */
  whenWritable(fn: () => void): void;
  /** Largest payload one data frame may carry towards the peer. */
  readonly maxChunk: number;
  release(id: number): void;
}

/** Bytes arriving from the peer. */
export class InboundStream extends Readable {
  private received = 0;
  private allowed: number;
  private eof = false;
  private grantScheduled = false;

  constructor(
    readonly id: number,
    private readonly link: StreamLink,
    private readonly window: number,
  ) {
    super();
    this.allowed = window;
  }

  /** Returns an error message if the peer overran its credit (a protocol violation). */
  deliver(chunk: Buffer): string | null {
    if (this.eof) return `stream ${this.id}: data after end of stream`;
    if (this.received + chunk.length > this.allowed) {
      return `stream ${this.id}: peer sent ${this.received + chunk.length - this.allowed} bytes beyond its credit`;
    }
    this.received += chunk.length;
    if (this.destroyed) return null;
    this.push(chunk);
    this.scheduleGrant();
    return null;
  }

  /** The peer sent `eof`. */
  peerEnded(): void {
    if (this.eof) return;
    this.eof = true;
    this.link.release(this.id);
    if (!this.destroyed) this.push(null);
  }

  // Every consumer path (read(), flowing mode, pipe, async iteration) goes through read(), so
  // this is where consumption becomes visible. _read() alone is not enough: Node calls it
  // once per push, and a stalled sender pushes nothing.
  override read(size?: number): ReturnType<Readable['read']> {
    const chunk: unknown = super.read(size);
    this.scheduleGrant();
    return chunk;
  }

  override _read(): void {
    this.scheduleGrant();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.eof) {
      this.eof = true;
      this.link.sendClose(this.id);
      this.link.release(this.id);
    }
    callback(err);
  }

  private scheduleGrant(): void {
    if (this.grantScheduled || this.eof) return;
    this.grantScheduled = true;
    process.nextTick(() => {
      this.grantScheduled = false;
      this.grant();
    });
  }

  // Grants go out a quarter window at a time: one credit frame per 256 KiB, not per chunk. That
  // cannot stall a sender: one out of credit has `window` bytes outstanding, so a reader that
  // consumed a quarter of them reaches the threshold here, in read().
  private grant(): void {
    if (this.eof) return;
    const consumed = this.received - this.readableLength;
    const delta = consumed + this.window - this.allowed;
    if (delta >= this.window / 4) {
      this.allowed += delta;
      this.link.sendCredit(this.id, delta);
    }
  }
}

/** Bytes going to the peer: writes complete as credit and the channel allow. */
export class OutboundStream extends Writable {
  private credit: number;
  private pending: { data: Buffer; offset: number; callback: (error?: Error | null) => void } | null = null;
  private waitingForChannel = false;
  private discarding = false;
  private done = false;

  constructor(
    readonly id: number,
    private readonly link: StreamLink,
    initialCredit: number,
  ) {
    // Room to collect a producer's small writes (pipes deliver 4 KiB at a time) while a frame
    // is on its way: _writev then sends them as one frame, which is what makes a slow (TCG)
    // guest fast, since its cost is per frame far more than per byte.
    super({ highWaterMark: OUTBOUND_BUFFER });
    this.credit = initialCredit;
  }

  /** The peer granted n more bytes. */
  addCredit(n: number): void {
    this.credit += n;
    this.pump();
  }

  /** The peer's reader is gone (or the channel is): complete writes without sending. */
  discard(): void {
    this.discarding = true;
    this.pump();
  }

  get peerClosed(): boolean {
    return this.discarding;
  }

  /** True while a write waits for credit: the peer's reader is behind. */
  get stalled(): boolean {
    return this.pending !== null && this.credit <= 0 && !this.discarding;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.send(chunk, callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.send(chunks.length === 1 ? chunks[0].chunk : Buffer.concat(chunks.map((c) => c.chunk)), callback);
  }

  private send(data: Buffer, callback: (error?: Error | null) => void): void {
    this.pending = { data, offset: 0, callback };
    this.pump();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.finish();
    callback();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.finish();
    this.pending = null;
    callback(err);
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    if (!this.discarding) this.link.sendEof(this.id);
    this.link.release(this.id);
  }

  private pump(): void {
    const p = this.pending;
    if (!p) return;
    while (p.offset < p.data.length && !this.discarding) {
      if (this.credit <= 0) return;
      if (this.link.blocked) {
        if (!this.waitingForChannel) {
          this.waitingForChannel = true;
          this.link.whenWritable(() => {
            this.waitingForChannel = false;
            this.pump();
          });
        }
        return;
      }
      const n = Math.min(this.credit, this.link.maxChunk, p.data.length - p.offset);
      this.link.sendData(this.id, p.data.subarray(p.offset, p.offset + n));
      p.offset += n;
      this.credit -= n;
    }
    this.pending = null;
    p.callback();
  }
}
