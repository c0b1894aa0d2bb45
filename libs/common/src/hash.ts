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
