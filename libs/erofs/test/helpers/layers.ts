// Layer sources for tests: a tar (built by tar-writer) compressed as asked and fed in uneven chunks, so
// header and body boundaries land everywhere.
import { spawnSync } from 'node:child_process';
import zlib from 'node:zlib';
import type { LayerSource } from '../../src';
import { hasTool } from './tools';

export type TestCompression = 'gzip' | 'zstd' | 'none';

export const zstdAvailable = hasTool('zstd');

export function compress(tar: Buffer, how: TestCompression): Buffer {
  if (how === 'gzip') return zlib.gzipSync(tar, { level: 1 });
  if (how === 'zstd') {
    const r = spawnSync('zstd', ['-q', '-c', '-1'], { input: tar, maxBuffer: 1 << 30 });
    if (r.status !== 0) throw new Error(`zstd failed: ${r.stderr.toString()}`);
    return r.stdout;
  }
  return tar;
}

const MEDIA: Record<TestCompression, string> = {
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  none: 'application/vnd.oci.image.layer.v1.tar',
};

/** A layer that yields `blob` in chunks of 1..maxChunk bytes (deterministic from `seed`). */
export function layer(
  blob: Buffer,
  opts: { compression?: TestCompression; maxChunk?: number; seed?: number; mediaType?: string | null } = {},
): LayerSource {
  const maxChunk = opts.maxChunk ?? 70_000;
  let x = opts.seed ?? 1;
  async function* chunks(): AsyncGenerator<Uint8Array> {
    let off = 0;
    while (off < blob.length) {
      x = (x * 1103515245 + 12345) >>> 0;
      const n = 1 + (x % maxChunk);
      yield blob.subarray(off, off + n);
      off += n;
    }
  }
  return {
    open: () => chunks(),
    mediaType: opts.mediaType === null ? undefined : (opts.mediaType ?? MEDIA[opts.compression ?? 'none']),
  };
}

export function tarLayer(
  tar: Buffer,
  how: TestCompression = 'none',
  opts: { maxChunk?: number; seed?: number } = {},
): LayerSource {
  return layer(compress(tar, how), { ...opts, compression: how });
}
