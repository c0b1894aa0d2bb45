import fs from 'node:fs';
import { nodeCrypto } from './lazy-crypto';

/** The sha256 of a file's bytes (hex), read in 1 MiB chunks: files here reach gigabytes. */
export function sha256File(file: string): string {
  const hash = nodeCrypto().createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

/** The bytes that went through a HashingTap: their count and sha256 (hex). */
export interface HashingTap {
  /** A pass-through stage for stream.pipeline that hashes and counts each chunk on its way. */
  tap: (chunks: AsyncIterable<Uint8Array>) => AsyncGenerator<Uint8Array>;
  size: () => number;
  /** The sha256 of what went through (once, when the pipeline is done). */
  digest: () => string;
}

export function hashingTap(): HashingTap {
  const hash = nodeCrypto().createHash('sha256');
  let size = 0;
  return {
    async *tap(chunks) {
      for await (const chunk of chunks) {
        hash.update(chunk);
        size += chunk.length;
        yield chunk;
      }
    },
    size: () => size,
    digest: () => hash.digest('hex'),
  };
}
