// The .smolmachine byte layout (docs/smolmachine.md): sections aligned to SECTION_ALIGN, then the
// manifest (JSON), then a fixed footer at the very end of the file. Offsets in the manifest and
// the footer count from the payload's first byte, so the same payload works as a sidecar file and
// appended to the stub executable (which is padded so the payload starts aligned in the file too).
import { SmolvmError } from '@smolvm/common';

/** Last 8 bytes of every .smolmachine file. */
export const PACK_MAGIC = Buffer.from('SMOLMACH', 'latin1');
/**
 * The newest format version this code writes. Version 2 is version 1 plus a running machine's
 * state (the `snapshot` manifest field, `memory` and `state` sections); version 3 adds sections
 * stored compressed (the kernel); version 4 the `runtime` (the guest's Node read from the packed
 * executable). A pack is written as the lowest version that has what it carries, so older
 * readers keep reading what they can. All four are read.
 */
export const PACK_FORMAT_VERSION = 4;
export const PACK_READ_VERSIONS: readonly number[] = [1, 2, 3, 4];
/** Sections start on this boundary, so QEMU's raw driver can use one in place (offset=, size=). */
export const SECTION_ALIGN = 4096;
export const FOOTER_SIZE = 80;
/** A manifest is a few KiB; this bounds what a hostile file can make us read and parse. */
export const MAX_MANIFEST_BYTES = 1024 * 1024;
export const MAX_SECTIONS = 16;

/** A file that is not a usable .smolmachine: truncated, tampered with, foreign or of another version. */
export class PackFormatError extends SmolvmError {
  constructor(
    file: string,
    why: string,
    remedy = 'get the file again from its source, or pack it again with `smolvm pack create`',
  ) {
    super(`${file} is not a usable .smolmachine: ${why}`, { remedy });
  }
}

export interface PackFooter {
  version: number;
  flags: number;
  manifestOffset: number;
  manifestLength: number;
  /** Bytes from the payload's first byte to the end of the file (footer included). */
  payloadLength: number;
  /** sha256 of the manifest bytes, hex. */
  manifestSha256: string;
}

// Footer, little-endian: u32 version, u32 flags, u64 manifest offset, u64 manifest length,
// u64 payload length, 32 bytes manifest sha256, 8 reserved zero bytes, 8 bytes magic.
export function encodeFooter(f: PackFooter): Buffer {
  const b = Buffer.alloc(FOOTER_SIZE);
  b.writeUInt32LE(f.version, 0);
  b.writeUInt32LE(f.flags, 4);
  b.writeBigUInt64LE(BigInt(f.manifestOffset), 8);
  b.writeBigUInt64LE(BigInt(f.manifestLength), 16);
  b.writeBigUInt64LE(BigInt(f.payloadLength), 24);
  Buffer.from(f.manifestSha256, 'hex').copy(b, 32);
  PACK_MAGIC.copy(b, 72);
  return b;
}

function safeNumber(v: bigint, what: string, file: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new PackFormatError(file, `its footer's ${what} is out of range`);
  return Number(v);
}

export function decodeFooter(b: Buffer, file: string): PackFooter {
  if (b.length !== FOOTER_SIZE || !b.subarray(72).equals(PACK_MAGIC))
    throw new PackFormatError(file, 'it does not end with the SMOLMACH magic (not a pack, or truncated)');
  const version = b.readUInt32LE(0);
  if (!PACK_READ_VERSIONS.includes(version)) {
    throw new PackFormatError(
      file,
      `it is format version ${version}, and this smolvm reads versions ${PACK_READ_VERSIONS.slice(0, -1).join(', ')} and ${PACK_READ_VERSIONS.at(-1)}`,
      'use a smolvm of the version that packed it, or pack it again with this one',
    );
  }
  if (!b.subarray(64, 72).equals(Buffer.alloc(8)))
    throw new PackFormatError(file, 'its footer has non-zero reserved bytes');
  return {
    version,
    flags: b.readUInt32LE(4),
    manifestOffset: safeNumber(b.readBigUInt64LE(8), 'manifest offset', file),
    manifestLength: safeNumber(b.readBigUInt64LE(16), 'manifest length', file),
    payloadLength: safeNumber(b.readBigUInt64LE(24), 'payload length', file),
    manifestSha256: b.subarray(32, 64).toString('hex'),
  };
}

export function alignUp(n: number, align = SECTION_ALIGN): number {
  return Math.ceil(n / align) * align;
}
