// The framing of QEMU's `-netdev stream`: each Ethernet frame (no FCS) preceded by its length as
// a 4-byte big-endian integer.

/** Largest frame we accept: a 64 KiB jumbo frame plus its Ethernet header. */
export const MAX_FRAME = 65536 + 14;
/**
 * Past this a length is not a frame but a broken stream (we would wait forever for its bytes):
 * the decoder reports it and the link is closed. Between MAX_FRAME and this, bytes are skipped.
 */
export const MAX_SKIP = 1024 * 1024;

export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes of an oversized frame still to skip. */
  private skipping = 0;
  /** Frames skipped: empty or longer than maxFrame. */
  dropped = 0;
  /** Of those, the ones longer than maxFrame. */
  oversize = 0;

  /** maxFrame: the longest frame kept (the gateway passes its MTU + the Ethernet header). */
  constructor(private readonly maxFrame = MAX_FRAME) {}

  /** Splits a chunk into frames (views into it where possible). Throws on a broken stream. */
  push(chunk: Buffer): Buffer[] {
    const frames: Buffer[] = [];
    if (this.skipping > 0) {
      const n = Math.min(this.skipping, chunk.length);
      this.skipping -= n;
      chunk = chunk.subarray(n);
    }
    let buf = chunk;
    if (this.pendingBytes > 0) {
      this.pending.push(chunk);
      buf = Buffer.concat(this.pending, this.pendingBytes + chunk.length);
      this.pending = [];
      this.pendingBytes = 0;
    }
    let i = 0;
    while (buf.length - i >= 4) {
      const len = buf.readUInt32BE(i);
      if (len > MAX_SKIP)
        throw new Error(`frame length ${len} is beyond any Ethernet frame: the stream is out of step`);
      if (len > this.maxFrame || len === 0) {
        this.dropped++;
        if (len > 0) this.oversize++;
        const available = Math.min(len, buf.length - i - 4);
        this.skipping = len - available;
        i += 4 + available;
        continue;
      }
      if (buf.length - i - 4 < len) break;
      frames.push(buf.subarray(i + 4, i + 4 + len));
      i += 4 + len;
    }
    if (i < buf.length) {
      const rest = buf.subarray(i);
      this.pending = [rest];
      this.pendingBytes = rest.length;
    }
    return frames;
  }
}

export function lengthPrefix(length: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(length);
  return b;
}
