// One end of the channel: framing, the hello exchange, request/response matching, events and
// the stream table. AgentClient (host) and AgentServer (agent) are thin layers over this.
import type { Duplex } from 'node:stream';
import {
  DATA_HEADER_RESERVE,
  DEFAULT_MAX_FRAME,
  DEFAULT_WINDOW,
  MAX_DATA_CHUNK,
  MIN_MAX_FRAME,
  MIN_WINDOW,
  PROTOCOL_VERSION,
} from './constants';
import { AgentRequestError, ProtocolError, isErrorCode, type ErrorCode } from './errors';
import { FrameDecoder, encodeFrame, type RawFrame } from './frame';
import { parseMessage, type AgentInfo, type EventMessage, type HelloMessage, type RequestMessage } from './messages';
import { SchemaError, type Json } from './schema';
import { InboundStream, OutboundStream, type StreamLink } from './streams';

/** Host streams get odd ids, agent streams even ones, so both can open streams without a race. */
export type Role = 'host' | 'agent';

export interface ConnectionOptions {
  /** Receive window this end grants per stream (default DEFAULT_WINDOW). */
  window?: number;
  /** Largest frame body this end accepts (default DEFAULT_MAX_FRAME). */
  maxFrame?: number;
}

export interface ConnectionHandlers {
  /** The peer's hello; throw a ProtocolError to refuse it. */
  hello(msg: HelloMessage): void;
  /** Absent on the host: an agent that sends requests breaks the protocol. */
  request?(msg: RequestMessage): void;
  event(msg: EventMessage): void;
}

interface PendingRequest {
  op: string;
  resolve(result: Json): void;
  reject(err: Error): void;
}

export class Connection {
  readonly window: number;
  readonly maxFrame: number;
  /** Resolves when the connection ends: null after close(), the error otherwise. */
  readonly closed: Promise<Error | null>;
  private peerHello: HelloMessage | null = null;
  private readonly decoder: FrameDecoder;
  private readonly inbound = new Map<number, InboundStream>();
  private readonly outbound = new Map<number, OutboundStream>();
  private readonly pending = new Map<number, PendingRequest>();
  private nextRequestId = 1;
  private nextStreamId: number;
  private highestPeerStreamId = 0;
  private isBlocked = false;
  private writableWaiters: Array<() => void> = [];
  private closeReason: Error | null | undefined;
  private resolveClosed!: (reason: Error | null) => void;
  private readonly link: StreamLink;

  constructor(
    private readonly io: Duplex,
    private readonly role: Role,
    private readonly handlers: ConnectionHandlers,
    options: ConnectionOptions = {},
  ) {
    this.window = Math.max(MIN_WINDOW, options.window ?? DEFAULT_WINDOW);
    this.maxFrame = Math.max(MIN_MAX_FRAME, options.maxFrame ?? DEFAULT_MAX_FRAME);
    this.decoder = new FrameDecoder(this.maxFrame);
    this.nextStreamId = role === 'host' ? 1 : 2;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.link = this.makeLink();
    io.on('data', (chunk: Buffer) => this.onChunk(chunk));
    io.on('end', () => this.fail(new ProtocolError('the channel was closed by the other end')));
    io.on('close', () => this.fail(new ProtocolError('the channel was closed')));
    io.on('error', (err: Error) => this.fail(new ProtocolError(`channel error: ${err.message}`, { cause: err })));
    io.on('drain', () => this.onDrain());
  }

  get peer(): HelloMessage | null {
    return this.peerHello;
  }

  get isClosed(): boolean {
    return this.closeReason !== undefined;
  }

  sendHello(fields: { ready?: boolean; agent?: AgentInfo } = {}): void {
    this.send({ t: 'hello', version: PROTOCOL_VERSION, window: this.window, maxFrame: this.maxFrame, ...fields });
  }

  /**
   * Sends a request; `beforeSend` learns its id first, so state keyed by it (an exec session)
   * exists before any reply can arrive.
   */
  request(op: string, args: Json, beforeSend?: (id: number) => void): Promise<Json> {
    if (this.closeReason !== undefined)
      return Promise.reject(this.closeReason ?? new ProtocolError('the connection is closed'));
    const id = this.nextRequestId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { op, resolve, reject });
      beforeSend?.(id);
      this.send({ t: 'req', id, op, args });
    });
  }

  /**
   * Requests sent on this channel before this Connection existed (a preamble, with the hello):
   * their answers are awaited as if this end had sent them, under ids 1..n in order.
   */
  adoptSentRequests(ops: string[]): Array<Promise<Json>> {
    if (this.nextRequestId !== 1) throw new Error('requests were sent already');
    return ops.map(
      (op) =>
        new Promise<Json>((resolve, reject) => {
          this.pending.set(this.nextRequestId++, { op, resolve, reject });
        }),
    );
  }

  respond(id: number, result: Json = {}): void {
    this.send({ t: 'res', id, ok: true, result });
  }

  respondError(id: number, code: ErrorCode, message: string): void {
    this.send({ t: 'res', id, ok: false, error: { code, message } });
  }

  sendEvent(op: string, args: Json): void {
    this.send({ t: 'event', op, args });
  }

  /** Resolves once everything written so far has been handed to the channel. */
  flush(): Promise<void> {
    if (this.closeReason !== undefined) return Promise.resolve();
    return new Promise((resolve) => this.io.write(Buffer.alloc(0), () => resolve()));
  }

  /** A new stream from the peer to us, under an id we allocate. */
  openInbound(): InboundStream {
    return this.addInbound(this.allocateStreamId());
  }

  /** A new stream from us to the peer, under an id we allocate. */
  openOutbound(): OutboundStream {
    return this.addOutbound(this.allocateStreamId());
  }

  /** Registers a stream the peer allocated (ids must be the peer's and increase). */
  acceptInbound(id: number): InboundStream {
    this.claimPeerStreamId(id);
    return this.addInbound(id);
  }

  acceptOutbound(id: number): OutboundStream {
    this.claimPeerStreamId(id);
    return this.addOutbound(id);
  }

  /** Ends the connection from this side; pending requests fail. */
  close(): void {
    this.shutdown(null);
  }

  /** Ends the connection because the peer misbehaved (or the channel failed). */
  fail(err: Error): void {
    this.shutdown(err);
  }

  private shutdown(reason: Error | null): void {
    if (this.closeReason !== undefined) return;
    this.closeReason = reason;
    const rejection = reason ?? new ProtocolError('the connection was closed');
    for (const p of this.pending.values()) p.reject(rejection);
    this.pending.clear();
    // Readers see end-of-stream; the failure itself reaches callers through pending promises
    // (exit, requests) rather than 'error' events nobody may be listening for.
    for (const s of [...this.inbound.values()]) s.peerEnded();
    for (const s of [...this.outbound.values()]) s.discard();
    this.inbound.clear();
    this.outbound.clear();
    const waiters = this.writableWaiters;
    this.writableWaiters = [];
    for (const w of waiters) w();
    this.io.destroy();
    this.resolveClosed(reason);
  }

  private send(header: object, payload?: Buffer): void {
    if (this.closeReason !== undefined) return;
    const parts = encodeFrame(header, payload);
    let ok = true;
    if (parts.length > 1) this.io.cork();
    for (const part of parts) ok = this.io.write(part);
    if (parts.length > 1) this.io.uncork();
    if (!ok) this.isBlocked = true;
  }

  private onDrain(): void {
    this.isBlocked = false;
    const waiters = this.writableWaiters;
    this.writableWaiters = [];
    for (const w of waiters) w();
  }

  private makeLink(): StreamLink {
    const isBlocked = () => this.isBlocked && this.closeReason === undefined;
    const maxChunk = () =>
      Math.min(MAX_DATA_CHUNK, (this.peerHello?.maxFrame ?? DEFAULT_MAX_FRAME) - DATA_HEADER_RESERVE);
    return {
      sendData: (id, chunk) => this.send({ t: 'data', s: id }, chunk),
      sendEof: (id) => this.send({ t: 'eof', s: id }),
      sendCredit: (id, n) => this.send({ t: 'credit', s: id, n }),
      sendClose: (id) => this.send({ t: 'close', s: id }),
      get blocked() {
        return isBlocked();
      },
      whenWritable: (fn) => {
        if (!isBlocked()) fn();
        else this.writableWaiters.push(fn);
      },
      get maxChunk() {
        return maxChunk();
      },
      release: (id) => {
        this.inbound.delete(id);
        this.outbound.delete(id);
      },
    };
  }

  private ownsStreamId(id: number): boolean {
    return (id % 2 === 1) === (this.role === 'host');
  }

  private allocateStreamId(): number {
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    return id;
  }

  private claimPeerStreamId(id: number): void {
    if (this.ownsStreamId(id) || id <= this.highestPeerStreamId) {
      throw new SchemaError(`stream id ${id} is not a new ${this.role === 'host' ? 'agent' : 'host'} stream id`);
    }
    this.highestPeerStreamId = id;
  }

  private addInbound(id: number): InboundStream {
    const s = new InboundStream(id, this.link, this.window);
    if (this.closeReason !== undefined) s.peerEnded();
    else this.inbound.set(id, s);
    return s;
  }

  private addOutbound(id: number): OutboundStream {
    const s = new OutboundStream(id, this.link, this.peerHello?.window ?? DEFAULT_WINDOW);
    if (this.closeReason !== undefined) s.discard();
    else this.outbound.set(id, s);
    return s;
  }

  /** False for ids that were never opened (a violation); true for ones already closed (a race). */
  private wasOpened(id: number): boolean {
    return this.ownsStreamId(id) ? id < this.nextStreamId : id <= this.highestPeerStreamId;
  }

  private onChunk(chunk: Buffer): void {
    if (this.closeReason !== undefined) return;
    let frames: RawFrame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    for (const frame of frames) {
      try {
        this.dispatch(frame);
      } catch (err) {
        this.fail(err instanceof ProtocolError ? err : new ProtocolError(`malformed frame: ${(err as Error).message}`));
      }
      if (this.closeReason !== undefined) return;
    }
  }

  private dispatch(frame: RawFrame): void {
    const msg = parseMessage(frame.header);
    if (msg.t !== 'data' && frame.payload.length > 0)
      throw new ProtocolError(`a '${msg.t}' frame carries an unexpected payload`);
    switch (msg.t) {
      case 'hello':
        if (this.peerHello) throw new ProtocolError('second hello');
        if (msg.version === PROTOCOL_VERSION) {
          if (msg.window < MIN_WINDOW)
            throw new ProtocolError(`peer window ${msg.window} is below the minimum ${MIN_WINDOW}`);
          if (msg.maxFrame < MIN_MAX_FRAME)
            throw new ProtocolError(`peer maximum frame ${msg.maxFrame} is below the minimum ${MIN_MAX_FRAME}`);
          this.peerHello = msg;
        }
        this.handlers.hello(msg);
        return;
      case 'req':
        if (!this.handlers.request) throw new ProtocolError(`unexpected request '${msg.op}' from the agent`);
        this.handlers.request(msg);
        return;
      case 'res': {
        const p = this.pending.get(msg.id);
        if (!p) throw new ProtocolError(`response to unknown request ${msg.id}`);
        this.pending.delete(msg.id);
        if (msg.ok) p.resolve(msg.result ?? {});
        else {
          const code = msg.error?.code ?? 'internal';
          p.reject(new AgentRequestError(p.op, isErrorCode(code) ? code : 'internal', msg.error?.message ?? 'failed'));
        }
        return;
      }
      case 'event':
        this.handlers.event(msg);
        return;
      case 'data':
      case 'eof': {
        const s = this.inbound.get(msg.s);
        if (!s) {
          if (this.wasOpened(msg.s)) return;
          throw new ProtocolError(`${msg.t} for unknown stream ${msg.s}`);
        }
        if (msg.t === 'eof') s.peerEnded();
        else if (frame.payload.length > 0) {
          const violation = s.deliver(frame.payload);
          if (violation) throw new ProtocolError(violation);
        }
        return;
      }
      case 'credit':
      case 'close': {
        const s = this.outbound.get(msg.s);
        if (!s) {
          if (this.wasOpened(msg.s)) return;
          throw new ProtocolError(`${msg.t} for unknown stream ${msg.s}`);
        }
        if (msg.t === 'close') s.discard();
        else s.addCredit(msg.n ?? 0);
        return;
      }
    }
  }
}
