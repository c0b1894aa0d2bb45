// Pull-style reading over an async chunk stream: exact-size reads for headers, zero-copy forwarding of
// bodies chunk by chunk.
import { EntryProblem } from './errors';

const EMPTY = Buffer.alloc(0);

const asBuffer = (c: Uint8Array): Buffer =>
  Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);

export class ByteSource {
  private cur: Buffer = EMPTY;
  private off = 0;
  private ended = false;
  private readonly it: AsyncIterator<Uint8Array>;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  /** True when a chunk is available; false at end of stream. */
  private async fill(): Promise<boolean> {
    while (this.off >= this.cur.length) {
      if (this.ended) return false;
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        return false;
      }
      if (typeof r.value === 'string') throw new EntryProblem('layer stream yields strings, not bytes');
      this.cur = asBuffer(r.value);
      this.off = 0;
    }
    return true;
  }

  /** Exactly n bytes, or null at a clean end of stream; a partial read means the data was cut short. */
  async readExact(n: number): Promise<Buffer | null> {
    if (!(await this.fill())) return null;
    if (this.cur.length - this.off >= n) {
      const out = this.cur.subarray(this.off, this.off + n);
      this.off += n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      if (!(await this.fill())) throw new EntryProblem('archive is truncated');
      const k = Math.min(n - got, this.cur.length - this.off);
      this.cur.copy(out, got, this.off, this.off + k);
      this.off += k;
      got += k;
    }
    return out;
  }

  /** Passes the next n bytes to `onChunk` as they arrive (views into the stream's own chunks). */
  async forward(n: number, onChunk: (chunk: Buffer) => void): Promise<void> {
    let left = n;
    while (left > 0) {
      if (!(await this.fill())) throw new EntryProblem('archive is truncated');
      const k = Math.min(left, this.cur.length - this.off);
      onChunk(this.cur.subarray(this.off, this.off + k));
      this.off += k;
      left -= k;
    }
  }

  async skip(n: number): Promise<void> {
    await this.forward(n, () => undefined);
  }

  /** Reads to the end, so a compressed stream's trailer and checksum get verified. */
  async drain(): Promise<void> {
    while (await this.fill()) this.off = this.cur.length;
  }

  /** Stops the underlying stream early (on errors), releasing its resources. */
  async close(): Promise<void> {
    this.ended = true;
    await this.it.return?.();
  }
}
