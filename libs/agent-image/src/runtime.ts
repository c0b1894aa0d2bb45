// A guest that runs on the packed executable's own Node (issue 15: one Node per pack, not two).
// The executable (a Node single executable) is attached read-only as the disk RUNTIME_DISK_ID;
// the agent image holds `runtime.erofs`, a small erofs whose one file, `node`, is chunk-based with
// its chunks on that disk (erofs multi-device). Two kinds of chunk are stored in runtime.erofs
// instead: the one holding the single-executable fuse, reset to '0' so the guest sees a plain
// node, and the tail past the disk's last whole 4 KiB block (the disk is a whole number of blocks).
// /init mounts it (loop + device=) before it starts the agent: the root itself cannot have a
// second device, since the kernel mounts the root before /dev exists.
import fs from 'node:fs';
import { SmolvmError } from '@smolvm/common';
import { ErofsBuilder } from '@smolvm/erofs';
import { fuseOffset } from '@smolvm/sea';

/** Disk serial of the packed executable attached as the guest's Node. */
export const RUNTIME_DISK_ID = 'smolvm-runtime';

/**
 * 64 KiB chunks: ~1,400 index entries for Node's ~90 MB instead of ~22,000 (fewer kernel map calls
 * on every read), at the price of 64 KiB copies for the two or three chunks stored in the image.
 */
export const RUNTIME_CHUNK_BITS = 16;

/** The executable a guest's Node is read from: its first `size` bytes are the runtime disk. */
export interface RuntimeSource {
  executable: string;
  /** A multiple of 4096: the bytes attached as the disk (the executable's size rounded down). */
  size: number;
  /** sha256 (hex) of those bytes; named in the image (the device's tag), so it is part of the image's key. */
  sha256: string;
}

/**
 * Writes `out`: the erofs holding `node` (mode 0755) whose bytes are the executable's with the
 * fuse reset, all but a few chunks read from the runtime disk. Refuses an executable that is not
 * a single executable (no fuse) or whose size does not agree with `size`.
 */
export async function writeRuntimeErofs(source: RuntimeSource, out: string): Promise<void> {
  const chunk = 2 ** RUNTIME_CHUNK_BITS;
  const fd = fs.openSync(source.executable, 'r');
  try {
    const fileSize = fs.fstatSync(fd).size;
    if (source.size % 4096 !== 0 || source.size > fileSize || fileSize - source.size >= 4096)
      throw new SmolvmError(
        `${source.executable} is ${fileSize} bytes, which does not fit a runtime of ${source.size} bytes`,
        { remedy: 'pack again: the executable changed since its runtime was measured' },
      );
    const read = (index: number): Buffer => {
      const start = index * chunk;
      const buf = Buffer.alloc(Math.min(chunk, fileSize - start));
      fs.readSync(fd, buf, 0, buf.length, start);
      return buf;
    };
    const fuse = fuseAt(fd, fileSize, source.executable);
    const overrides = new Map<number, Buffer>();
    const fuseChunk = Math.floor(fuse / chunk);
    const fuseBytes = read(fuseChunk);
    fuseBytes[fuse - fuseChunk * chunk] = 0x30;
    overrides.set(fuseChunk, fuseBytes);
    // Chunks reaching past the disk's end: their bytes beyond it exist only here.
    const lastChunk = Math.ceil(fileSize / chunk) - 1;
    for (let i = Math.floor(source.size / chunk); i <= lastChunk; i++) if (!overrides.has(i)) overrides.set(i, read(i));
    const b = ErofsBuilder.create(out, {
      devices: [{ tag: source.sha256, blocks: source.size / 4096 }],
      volumeName: 'smolvm-runtime',
      buildTime: 0,
      uuid: new Uint8Array(16),
    });
    try {
      b.writeMappedFile(
        'node',
        {
          size: fileSize,
          device: 1,
          chunkBits: RUNTIME_CHUNK_BITS,
          overrides: [...overrides].map(([index, data]) => ({ chunk: index, data })),
        },
        { mode: 0o755 },
      );
      await b.finish();
    } catch (err) {
      await b.abort();
      throw err;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** The offset of the fuse's flag byte, found by reading the executable in 8 MiB steps (it is ~90 MB). */
function fuseAt(fd: number, fileSize: number, file: string): number {
  const step = 8 * 1024 * 1024;
  const overlap = 64;
  const buf = Buffer.alloc(step + overlap);
  for (let pos = 0; pos < fileSize; pos += step) {
    const n = fs.readSync(fd, buf, 0, Math.min(buf.length, fileSize - pos), pos);
    const at = fuseOffset(buf.subarray(0, n));
    if (at >= 0 && at < n) {
      if (buf[at] !== 0x30 && buf[at] !== 0x31) break;
      return pos + at;
    }
  }
  throw new SmolvmError(`${file} is not a Node single executable (it has no single-executable fuse)`, {
    remedy: 'pack with the smolvm-stub that tools/setup builds (npx nx run-many -t build-sea)',
  });
}
