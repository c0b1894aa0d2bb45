// ttrpc, the small RPC protocol containerd speaks to its shims (github.com/containerd/ttrpc): a
// stream of frames over a unix socket, each a 10-byte header and a protobuf payload.
//   u32 BE length of the payload (at most 4 MiB)   u32 BE stream id (clients use odd ids)
//   u8 type (1 request, 2 response)                 u8 flags (0 for unary calls)
// A request's payload is a ttrpc.Request (service, method, the method's message, timeout,
// metadata); its answer, on the same stream id, a ttrpc.Response (a google.rpc.Status and the
// reply's message). Unary calls only: that is all the task and events services use.
import net from 'node:net';
import { decodeMessage, encodeMessage, protoRoot } from './proto';

export const HEADER_LENGTH = 10;
export const MAX_MESSAGE = 4 << 20;
export const TYPE_REQUEST = 1;
export const TYPE_RESPONSE = 2;

/** gRPC status codes containerd maps to its errors (errdefs). */
export const Code = {
  OK: 0,
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
} as const;

export interface Frame {
  streamId: number;
  type: number;
  flags: number;
  payload: Buffer;
}

export interface TtrpcRequest {
  service: string;
  method: string;
  payload: Buffer;
  timeoutNano: number;
  metadata: Array<{ key: string; value: string }>;
}

export interface TtrpcStatus {
  code: number;
  message: string;
}

/** A call answered with a non-OK status. */
export class TtrpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'TtrpcError';
  }
}

export function encodeFrame(frame: Frame): Buffer {
  if (frame.payload.length > MAX_MESSAGE)
    throw new TtrpcError(Code.Internal, `ttrpc: message of ${frame.payload.length} bytes exceeds ${MAX_MESSAGE}`);
  const header = Buffer.alloc(HEADER_LENGTH);
  header.writeUInt32BE(frame.payload.length, 0);
  header.writeUInt32BE(frame.streamId, 4);
  header.writeUInt8(frame.type, 8);
  header.writeUInt8(frame.flags, 9);
  return Buffer.concat([header, frame.payload]);
}

/**
 * Splits a byte stream into frames. A header announcing more than MAX_MESSAGE is an error before
 * any of its payload is buffered, so a peer can make us hold at most one maximum-sized frame.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.buffered < HEADER_LENGTH) return frames;
      const head = this.peek(HEADER_LENGTH);
      const length = head.readUInt32BE(0);
      if (length > MAX_MESSAGE)
        throw new TtrpcError(Code.ResourceExhausted, `ttrpc: message of ${length} bytes exceeds ${MAX_MESSAGE}`);
      if (this.buffered < HEADER_LENGTH + length) return frames;
      const all = this.take(HEADER_LENGTH + length);
      frames.push({
        streamId: all.readUInt32BE(4),
        type: all.readUInt8(8),
        flags: all.readUInt8(9),
        payload: all.subarray(HEADER_LENGTH),
      });
    }
  }

  private peek(n: number): Buffer {
    if (this.chunks[0].length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0].subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = Buffer.concat(this.chunks);
    this.chunks = all.length > n ? [all.subarray(n)] : [];
    this.buffered -= n;
    return all.subarray(0, n);
  }
}

export function encodeRequest(
  streamId: number,
  request: Partial<TtrpcRequest> & { service: string; method: string },
): Buffer {
  return encodeFrame({ streamId, type: TYPE_REQUEST, flags: 0, payload: encodeMessage('ttrpc.Request', request) });
}

export function decodeRequest(payload: Buffer): TtrpcRequest {
  return decodeMessage<TtrpcRequest>('ttrpc.Request', payload);
}

export function encodeResponse(streamId: number, result: { payload: Buffer } | { status: TtrpcStatus }): Buffer {
  return encodeFrame({ streamId, type: TYPE_RESPONSE, flags: 0, payload: encodeMessage('ttrpc.Response', result) });
}

export function decodeResponse(payload: Buffer): { status: TtrpcStatus | null; payload: Buffer } {
  return decodeMessage<{ status: TtrpcStatus | null; payload: Buffer }>('ttrpc.Response', payload);
}

/** A method: gets the decoded request message and the call's metadata, returns the reply message. */
export type Method = (
  request: Record<string, unknown>,
  metadata: ReadonlyMap<string, string>,
) => Promise<Record<string, unknown>>;

export interface ServiceDefinition {
  /** Full protobuf name, e.g. containerd.task.v2.Task. */
  name: string;
  methods: Record<string, Method>;
}

/**
 * Serves services on a listening socket. Each request runs concurrently (containerd sends Wait
 * and then other calls on one connection); a method that throws a TtrpcError answers with its
 * code, anything else with Internal. A connection that breaks the framing is closed.
 */
export class TtrpcServer {
  private readonly services = new Map<string, ServiceDefinition>();
  private readonly sockets = new Set<net.Socket>();
  readonly server: net.Server;
  onError: (err: Error) => void = () => undefined;
  /** Sees every frame as it crossed the socket (SMOLVM_SHIM_TRACE: fixtures for the tests). */
  onFrame: (direction: 'in' | 'out', bytes: Buffer) => void = () => undefined;

  constructor(services: ServiceDefinition[]) {
    for (const s of services) this.services.set(s.name, s);
    this.server = net.createServer((socket) => this.serve(socket));
  }

  get connections(): number {
    return this.sockets.size;
  }

  close(): void {
    this.server.close();
    for (const s of this.sockets) s.destroy();
  }

  private serve(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    const decoder = new FrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
        for (const f of frames) this.onFrame('in', encodeFrame(f));
      } catch (err) {
        this.onError(err as Error);
        socket.destroy();
        return;
      }
      for (const frame of frames) {
        if (frame.type !== TYPE_REQUEST || frame.streamId % 2 === 0) {
          this.onError(new Error(`ttrpc: unexpected frame type ${frame.type} on stream ${frame.streamId}`));
          socket.destroy();
          return;
        }
        void this.call(frame).then((answer) => {
          this.onFrame('out', answer);
          if (!socket.destroyed) socket.write(answer);
        });
      }
    });
  }

  private async call(frame: Frame): Promise<Buffer> {
    try {
      const request = decodeRequest(frame.payload);
      const service = this.services.get(request.service);
      const method = service?.methods[request.method];
      if (!service || !method)
        throw new TtrpcError(Code.Unimplemented, `${request.service}.${request.method} is not implemented`);
      const types = methodTypes(service.name, request.method);
      const input = decodeMessage(types.request, request.payload);
      const metadata = new Map(request.metadata.map((kv) => [kv.key, kv.value]));
      const output = await method(input, metadata);
      return encodeResponse(frame.streamId, { payload: encodeMessage(types.response, output) });
    } catch (err) {
      const code = err instanceof TtrpcError ? err.code : Code.Internal;
      if (!(err instanceof TtrpcError)) this.onError(err as Error);
      return encodeResponse(frame.streamId, { status: { code, message: (err as Error).message } });
    }
  }
}

/** Request and response message names of a method, from the loaded schema. */
export function methodTypes(service: string, method: string): { request: string; response: string } {
  const m = protoRoot().lookupService(service).methods[method];
  if (!m) throw new TtrpcError(Code.Unimplemented, `${service}.${method} is not implemented`);
  m.resolve();
  return {
    request: m.resolvedRequestType!.fullName.replace(/^\./, ''),
    response: m.resolvedResponseType!.fullName.replace(/^\./, ''),
  };
}

/** A client of one connection: unary calls, each on the next odd stream id. */
export class TtrpcClient {
  private nextStream = 1;
  private readonly pending = new Map<number, { resolve: (b: Buffer) => void; reject: (e: Error) => void }>();
  private readonly decoder = new FrameDecoder();
  private closedWith: Error | undefined;

  constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const frame of this.decoder.push(chunk)) this.answer(frame);
      } catch (err) {
        socket.destroy(err as Error);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closedWith ??= new TtrpcError(Code.Unavailable, 'ttrpc: connection closed');
      for (const p of this.pending.values()) p.reject(this.closedWith);
      this.pending.clear();
    });
  }

  static connect(path: string): Promise<TtrpcClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(path);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new TtrpcClient(socket));
      });
      socket.once('error', reject);
    });
  }

  /** Calls service.method with a request message; resolves with the decoded reply. */
  async call(
    service: string,
    method: string,
    request: Record<string, unknown>,
    metadata: Record<string, string> = {},
    timeoutMs = 5000,
  ): Promise<Record<string, unknown>> {
    if (this.closedWith || this.socket.destroyed)
      throw this.closedWith ?? new TtrpcError(Code.Unavailable, 'ttrpc: connection closed');
    const types = methodTypes(service, method);
    const streamId = this.nextStream;
    this.nextStream += 2;
    const frame = encodeRequest(streamId, {
      service,
      method,
      payload: encodeMessage(types.request, request),
      timeoutNano: timeoutMs * 1_000_000,
      metadata: Object.entries(metadata).map(([key, value]) => ({ key, value })),
    });
    const answer = await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(streamId);
        reject(new TtrpcError(Code.DeadlineExceeded, `ttrpc: ${service}.${method} got no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(streamId, {
        resolve: (b) => (clearTimeout(timer), resolve(b)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.socket.write(frame);
    });
    const response = decodeResponse(answer);
    if (response.status && response.status.code !== Code.OK)
      throw new TtrpcError(response.status.code, response.status.message);
    return decodeMessage(types.response, response.payload);
  }

  close(): void {
    this.socket.destroy();
  }

  private answer(frame: Frame): void {
    const p = this.pending.get(frame.streamId);
    if (frame.type !== TYPE_RESPONSE || !p) return;
    this.pending.delete(frame.streamId);
    p.resolve(frame.payload);
  }
}
