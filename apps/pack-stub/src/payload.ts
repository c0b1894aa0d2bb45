// Where the packed executable finds its payload: `<exe>.smolmachine` beside it, or appended to
// the executable itself (--single-file).
import fs from 'node:fs';
import { NotFoundError } from '@smolvm/common';
import { PACK_MAGIC, PackFile } from '@smolvm/pack/local';
import { isSingleExecutable } from '@smolvm/sea';

/**
 * This executable's own file: the single executable (smolvm-stub, tools/sea/build.ts), or the
 * script Node runs (the stub as a CommonJS bundle, directly or through the --single-file loader,
 * which names it __filename too).
 */
export function selfPath(): string {
  return isSingleExecutable() ? process.execPath : __filename;
}

function endsWithMagic(file: string): boolean {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      if (size < PACK_MAGIC.length) return false;
      const tail = Buffer.alloc(PACK_MAGIC.length);
      fs.readSync(fd, tail, 0, tail.length, size - tail.length);
      return tail.equals(PACK_MAGIC);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
}

/** The pack this executable runs (opened and checked; sections are verified before first use). */
export function findPayload(self = selfPath()): PackFile {
  const sidecar = `${self}.smolmachine`;
  if (fs.existsSync(sidecar)) return PackFile.open(sidecar);
  if (endsWithMagic(self)) return PackFile.open(self);
  throw new NotFoundError(`no payload for ${self}: neither ${sidecar} beside it nor one appended to it`, {
    remedy: `put the .smolmachine that came with it at ${sidecar}`,
  });
}
