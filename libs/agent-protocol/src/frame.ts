// Wire framing. One frame:
//   u32 BE  length of everything that follows (4 <= length <= receiver's max frame)
//   u32 BE  header length H (1 <= H <= min(length - 4, MAX_HEADER))
//   H bytes UTF-8 JSON object (the header)
//   rest    binary payload (possibly empty)
// The decoder checks both lengths before it buffers a byte of the frame body, so a hostile
// peer can make it hold at most one maximum-sized frame.
import { MAX_HEADER } from './constants';
import { ProtocolError } from './errors';

export interface RawFrame {
  header: Record<string, unknown>;
  payload: Buffer;
}

const PREFIX = 8;

/** The bytes of one frame: prefix + header in one buffer, the payload (if any) as its own. */
export function encodeFrame(header: object, payload?: Uint8Array): Buffer[] {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  if (json.length > MAX_HEADER)
    throw new ProtocolError(`header of ${json.length} bytes exceeds the ${MAX_HEADER}-byte limit`);
  const payloadLength = payload?.length ?? 0;
  const head = Buffer.allocUnsafe(PREFIX + json.length);
  head.writeUInt32BE(4 + json.length + payloadLength, 0);
  head.writeUInt32BE(json.length, 4);
  json.copy(head, PREFIX);
  return payloadLength > 0 && payload
    ? [head, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)]
    : [head];
}

/** Incremental decoder: feed it chunks as they arrive, get complete frames back. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed: ProtocolError | null = null;

  constructor(private readonly maxFrame: number) {}

  /** Returns the frames completed by `chunk`; throws ProtocolError (and stays failed) on bad input. */
  push(chunk: Buffer): RawFrame[] {
    if (this.failed) throw this.failed;
    if (chunk.length === 0) return [];
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: RawFrame[] = [];
    try {
      for (;;) {
        if (this.buffered < 4) break;
        const length = this.peekUInt32(0);
        if (length > this.maxFrame)
          throw new ProtocolError(`frame of ${length} bytes exceeds the ${this.maxFrame}-byte limit`);
        if (length < 4) throw new ProtocolError(`frame of ${length} bytes is too short to hold a header length`);
        if (this.buffered < 4 + length) break;
        frames.push(parseBody(this.take(4 + length).subarray(4)));
      }
    } catch (err) {
      this.failed = err instanceof ProtocolError ? err : new ProtocolError(String(err));
      this.chunks = [];
      this.buffered = 0;
      throw this.failed;
    }
    return frames;
  }

  /** Bytes held that do not yet form a complete frame. */
  get pendingBytes(): number {
    return this.buffered;
  }

  private peekUInt32(offset: number): number {
    const first = this.chunks[0];
    if (first.length >= offset + 4) return first.readUInt32BE(offset);
    const bytes = Buffer.alloc(4);
    let copied = 0;
    let skip = offset;
    for (const chunk of this.chunks) {
      if (skip >= chunk.length) {
        skip -= chunk.length;
        continue;
      }
      copied += chunk.copy(bytes, copied, skip, Math.min(chunk.length, skip + 4 - copied));
      skip = 0;
      if (copied === 4) break;
    }
    return bytes.readUInt32BE(0);
  }

  /** Removes and returns the first n buffered bytes, copying only when they span chunks. */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0];
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let copied = 0;
    while (copied < n) {
      const chunk = this.chunks[0];
      const want = n - copied;
      if (chunk.length <= want) {
        chunk.copy(out, copied);
        copied += chunk.length;
        this.chunks.shift();
      } else {
        chunk.copy(out, copied, 0, want);
        this.chunks[0] = chunk.subarray(want);
        copied += want;
      }
    }
    return out;
  }
}

function parseBody(body: Buffer): RawFrame {
  const headerLength = body.readUInt32BE(0);
  if (headerLength === 0) throw new ProtocolError('frame has an empty header');
  if (headerLength > MAX_HEADER)
    throw new ProtocolError(`header of ${headerLength} bytes exceeds the ${MAX_HEADER}-byte limit`);
  if (headerLength > body.length - 4) {
    throw new ProtocolError(`header length ${headerLength} overruns its ${body.length}-byte frame`);
  }
  let header: unknown;
  try {
    header = JSON.parse(body.toString('utf8', 4, 4 + headerLength));
  } catch (err) {
    throw new ProtocolError(`frame header is not valid JSON (${(err as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new ProtocolError('frame header is not a JSON object');
  }
  return { header: header as Record<string, unknown>, payload: body.subarray(4 + headerLength) };
}
