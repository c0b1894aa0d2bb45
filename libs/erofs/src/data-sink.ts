// Streams regular-file contents straight into the image as entries arrive, so memory stays bounded
// whatever the layer size. Each file starts on a block boundary; its full blocks go to the image data
// area in order, and its partial last block is either moved to a small spool file (to be packed inline
// after the inode later) or zero-padded in place. Data of files that later layers delete or replace
// stays behind as dead blocks: the writer never goes back.
import fs from 'node:fs';
import { BLOCK_SIZE } from './format';
import type { FileData } from './tree';

/** Coalescing buffer for image writes; a multiple of the block size. */
const OUT_BUFFER = 1 << 20;
const SPOOL_BUFFER = 1 << 16;

export class DataSink {
  private readonly out = Buffer.allocUnsafe(OUT_BUFFER);
  private outLen = 0;
  /** Image offset of out[0]. */
  private outPos: number;
  private readonly spoolBuf = Buffer.allocUnsafe(SPOOL_BUFFER);
  private spoolLen = 0;
  private spoolPos = 0;
  private fileStart = -1;
  private fileBytes = 0;
  /** Data blocks written so far, live or dead. */
  blocksWritten = 0;

  constructor(
    private readonly fd: number,
    private readonly spoolFd: number,
    firstBlock: number,
  ) {
    this.outPos = firstBlock * BLOCK_SIZE;
  }

  /** First block after the data written so far (valid once no file is open). */
  get nextBlock(): number {
    return (this.outPos + this.outLen) / BLOCK_SIZE;
  }

  beginFile(): void {
    if (this.fileStart >= 0) throw new Error('DataSink: a file is already being written');
    this.fileStart = this.outPos + this.outLen;
    this.fileBytes = 0;
  }

  write(chunk: Uint8Array): void {
    if (this.fileStart < 0) throw new Error('DataSink: no file is being written');
    this.fileBytes += chunk.length;
    let off = 0;
    while (off < chunk.length) {
      if (this.outLen === OUT_BUFFER) {
        this.writeOut(this.out);
        this.outLen = 0;
      }
      const left = chunk.length - off;
      if (this.outLen === 0 && left >= OUT_BUFFER) {
        // Large chunks skip the copy; only their unaligned end goes through the buffer.
        const n = left - (left % BLOCK_SIZE);
        this.writeOut(chunk.subarray(off, off + n));
        off += n;
        continue;
      }
      const n = Math.min(left, OUT_BUFFER - this.outLen);
      this.out.set(chunk.subarray(off, off + n), this.outLen);
      this.outLen += n;
      off += n;
    }
  }

  /**
   * Closes the current file. `inlineTail(len)` says whether a partial last block of `len` bytes should be
   * spooled for inline packing; otherwise it is padded into a block of its own after the full blocks.
   */
  endFile(inlineTail: (tailLength: number) => boolean): FileData {
    if (this.fileStart < 0) throw new Error('DataSink: no file is being written');
    const size = this.fileBytes;
    const fullBlocks = Math.floor(size / BLOCK_SIZE);
    const tailLength = size % BLOCK_SIZE;
    let tail: FileData['tail'] = null;
    if (tailLength > 0) {
      // Flushes only ever happen at block multiples, so the partial block is still in the buffer.
      const tailBytes = this.out.subarray(this.outLen - tailLength, this.outLen);
      if (inlineTail(tailLength)) {
        tail = { where: 'spool', offset: this.spoolPos + this.spoolLen, length: tailLength };
        this.spoolAppend(tailBytes);
        this.outLen -= tailLength;
      } else {
        tail = { where: 'block' };
        this.out.fill(0, this.outLen, this.outLen + BLOCK_SIZE - tailLength);
        this.outLen += BLOCK_SIZE - tailLength;
      }
    }
    const blocks = fullBlocks + (tail?.where === 'block' ? 1 : 0);
    this.blocksWritten += blocks;
    const data: FileData = { size, blkaddr: blocks > 0 ? this.fileStart / BLOCK_SIZE : 0, fullBlocks, tail };
    this.fileStart = -1;
    return data;
  }

  /**
   * Writes `data` zero-padded to `blocks` whole blocks (no tail spooling: chunks are read block-wise)
   * and returns the first block's address.
   */
  writeBlocks(data: Uint8Array, blocks: number): number {
    if (data.length > blocks * BLOCK_SIZE) throw new Error('DataSink: data longer than its blocks');
    this.beginFile();
    try {
      this.write(data);
      const zeros = Buffer.alloc(Math.min(OUT_BUFFER, blocks * BLOCK_SIZE - data.length));
      for (let left = blocks * BLOCK_SIZE - data.length; left > 0; left -= zeros.length) {
        this.write(left >= zeros.length ? zeros : zeros.subarray(0, left));
      }
    } catch (err) {
      this.abandonFile();
      throw err;
    }
    return this.endFile(() => false).blkaddr;
  }

  /** Forgets a file that failed half-way: its blocks become dead space, its tail never reaches the spool. */
  abandonFile(): void {
    if (this.fileStart < 0) return;
    const partial = this.fileBytes % BLOCK_SIZE;
    this.out.fill(0, this.outLen, this.outLen + (partial ? BLOCK_SIZE - partial : 0));
    this.outLen += partial ? BLOCK_SIZE - partial : 0;
    this.fileStart = -1;
  }

  /** Writes everything buffered; after this the image and the spool can be read back. */
  flush(): void {
    if (this.outLen > 0) {
      this.writeOut(this.out.subarray(0, this.outLen));
      this.outLen = 0;
    }
    if (this.spoolLen > 0) {
      writeFully(this.spoolFd, this.spoolBuf.subarray(0, this.spoolLen), this.spoolPos);
      this.spoolPos += this.spoolLen;
      this.spoolLen = 0;
    }
  }

  readTail(offset: number, length: number, into: Buffer, at: number): void {
    let done = 0;
    while (done < length) {
      const n = fs.readSync(this.spoolFd, into, at + done, length - done, offset + done);
      if (n === 0) throw new Error('tail spool is shorter than recorded');
      done += n;
    }
  }

  private spoolAppend(bytes: Buffer): void {
    if (this.spoolLen + bytes.length > SPOOL_BUFFER) {
      writeFully(this.spoolFd, this.spoolBuf.subarray(0, this.spoolLen), this.spoolPos);
      this.spoolPos += this.spoolLen;
      this.spoolLen = 0;
    }
    bytes.copy(this.spoolBuf, this.spoolLen);
    this.spoolLen += bytes.length;
  }

  private writeOut(bytes: Uint8Array): void {
    writeFully(this.fd, bytes, this.outPos);
    this.outPos += bytes.length;
  }
}

export function writeFully(fd: number, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.length) {
    done += fs.writeSync(fd, bytes, done, bytes.length - done, position + done);
  }
}
