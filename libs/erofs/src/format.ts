// EROFS on-disk structures (little endian), as far as an uncompressed image needs them.
// Layouts follow the kernel's fs/erofs/erofs_fs.h; sizes are asserted by the tests.

export const BLOCK_SIZE = 4096;
export const BLOCK_BITS = 12;
export const SUPERBLOCK_OFFSET = 1024;
export const SUPERBLOCK_SIZE = 128;
export const EROFS_MAGIC = 0xe0f5e1e2;
/** Inode slots are 32 bytes: nid = byte offset in the metadata area / 32. */
export const INODE_SLOT = 32;
export const COMPACT_INODE_SIZE = 32;
export const EXTENDED_INODE_SIZE = 64;
export const DIRENT_SIZE = 12;
export const XATTR_HEADER_SIZE = 12;
export const XATTR_ENTRY_HEADER_SIZE = 4;
/** Longest name a dirent can hold (EROFS_NAME_LEN). */
export const MAX_NAME = 255;

export const FEATURE_COMPAT_SB_CHKSUM = 0x1;
export const FEATURE_COMPAT_MTIME = 0x2;

/** Some regular files are chunk-based (EROFS_INODE_CHUNK_BASED); kernel >= 5.15. */
export const FEATURE_INCOMPAT_CHUNKED_FILE = 0x4;
/** The superblock points at a table of extra devices; kernel >= 5.16. */
export const FEATURE_INCOMPAT_DEVICE_TABLE = 0x8;

/** One 128-byte slot per extra device: tag[64], blocks (le32), mapped_blkaddr (le32), reserved. */
export const DEVICE_SLOT_SIZE = 128;
export const DEVICE_TAG_SIZE = 64;
/**
 * The device table sits in block 0 right after the superblock (slot 9 = byte 1152), so the superblock
 * checksum covers it; that leaves room for this many devices.
 */
export const DEVICE_TABLE_SLOT = (SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE) / DEVICE_SLOT_SIZE;
export const MAX_EXTRA_DEVICES = (BLOCK_SIZE - SUPERBLOCK_OFFSET - SUPERBLOCK_SIZE) / DEVICE_SLOT_SIZE;

/** Chunk format in i_u of a chunk-based inode: log2(chunk size / block size) in the low 5 bits. */
export const CHUNK_FORMAT_BLKBITS_MASK = 0x1f;
/** 8-byte indexes {advise, device_id, blkaddr} instead of a plain le32 block map. */
export const CHUNK_FORMAT_INDEXES = 0x20;
export const CHUNK_INDEX_SIZE = 8;
export const BLOCK_MAP_ENTRY_SIZE = 4;
export const MIN_CHUNK_BITS = BLOCK_BITS;
export const MAX_CHUNK_BITS = BLOCK_BITS + CHUNK_FORMAT_BLKBITS_MASK;
/** A chunk (or block map entry) with this blkaddr is a hole that reads as zeros. */
export const NULL_ADDR = 0xffffffff;

export const LAYOUT_FLAT_PLAIN = 0;
export const LAYOUT_FLAT_INLINE = 2;
export const LAYOUT_CHUNK_BASED = 4;

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

export type InodeKind = 'file' | 'dir' | 'symlink' | 'chardev' | 'blockdev' | 'fifo' | 'socket';

export const MODE_TYPE: Record<InodeKind, number> = {
  file: S_IFREG,
  dir: S_IFDIR,
  symlink: S_IFLNK,
  chardev: S_IFCHR,
  blockdev: S_IFBLK,
  fifo: S_IFIFO,
  socket: S_IFSOCK,
};

/** Dirent file_type values (the kernel's generic FT_* numbering). */
export const FILE_TYPE: Record<InodeKind, number> = {
  file: 1,
  dir: 2,
  chardev: 3,
  blockdev: 4,
  fifo: 5,
  socket: 6,
  symlink: 7,
};

export function kindFromMode(mode: number): InodeKind | undefined {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return 'file';
    case S_IFDIR:
      return 'dir';
    case S_IFLNK:
      return 'symlink';
    case S_IFCHR:
      return 'chardev';
    case S_IFBLK:
      return 'blockdev';
    case S_IFIFO:
      return 'fifo';
    case S_IFSOCK:
      return 'socket';
    default:
      return undefined;
  }
}

// ---- crc32c (Castagnoli), raw register without the final inversion, as the kernel's crc32c() returns it.

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32c(seed: number, data: Uint8Array): number {
  let crc = seed >>> 0;
  for (let i = 0; i < data.length; i++) crc = CRC32C_TABLE[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return crc >>> 0;
}

// ---- device numbers: the kernel's new_encode_dev()/new_decode_dev() 32-bit form.

export const MAX_DEV_MAJOR = 0xfff;
export const MAX_DEV_MINOR = 0xfffff;

export function encodeDev(major: number, minor: number): number {
  return ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

export function decodeDev(dev: number): { major: number; minor: number } {
  return { major: (dev & 0xfff00) >>> 8, minor: ((dev & 0xff) | ((dev >>> 12) & 0xfff00)) >>> 0 };
}

// ---- superblock

export interface SuperblockFields {
  rootNid: number;
  inodeCount: number;
  buildTime: number;
  buildTimeNsec: number;
  blocks: number;
  metaBlkAddr: number;
  uuid: Uint8Array;
  volumeName: Uint8Array;
  /** FEATURE_INCOMPAT_* bits; 0 for plain uncompressed images. */
  featureIncompat?: number;
  /** Extra devices, written as the device table (DEVICE_TABLE_SLOT onwards). */
  devices?: ReadonlyArray<{ tag: Uint8Array; blocks: number }>;
}

/** Block 0 of the image: zeros, the superblock at 1024 and its checksum over the rest of the block. */
export function encodeSuperblockBlock(sb: SuperblockFields): Buffer {
  const block = Buffer.alloc(BLOCK_SIZE);
  const b = block.subarray(SUPERBLOCK_OFFSET, SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE);
  b.writeUInt32LE(EROFS_MAGIC, 0);
  b.writeUInt32LE(0, 4); // checksum, filled below
  b.writeUInt32LE(FEATURE_COMPAT_SB_CHKSUM | FEATURE_COMPAT_MTIME, 8);
  b.writeUInt8(BLOCK_BITS, 12);
  b.writeUInt8(0, 13); // sb_extslots
  b.writeUInt16LE(sb.rootNid, 14);
  b.writeBigUInt64LE(BigInt(sb.inodeCount), 16);
  b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(sb.buildTime)), 24);
  b.writeUInt32LE(sb.buildTimeNsec, 32);
  b.writeUInt32LE(sb.blocks, 36);
  b.writeUInt32LE(sb.metaBlkAddr, 40);
  b.writeUInt32LE(0, 44); // xattr_blkaddr: no shared xattrs
  Buffer.from(sb.uuid).copy(b, 48, 0, 16);
  Buffer.from(sb.volumeName).copy(b, 64, 0, 16);
  // Plain uncompressed images need no incompat feature; this and the rest then stay zero.
  b.writeUInt32LE(sb.featureIncompat ?? 0, 80);
  const devices = sb.devices ?? [];
  if (devices.length > MAX_EXTRA_DEVICES) throw new Error(`erofs: at most ${MAX_EXTRA_DEVICES} extra devices`);
  if (devices.length > 0) {
    b.writeUInt16LE(devices.length, 86); // extra_devices
    b.writeUInt16LE(DEVICE_TABLE_SLOT, 88); // devt_slotoff, in slot units
    devices.forEach((d, i) => {
      const at = DEVICE_TABLE_SLOT * DEVICE_SLOT_SIZE + i * DEVICE_SLOT_SIZE;
      Buffer.from(d.tag).copy(block, at, 0, DEVICE_TAG_SIZE);
      block.writeUInt32LE(d.blocks, at + DEVICE_TAG_SIZE);
      // mapped_blkaddr 0: chunks name the device by id; there is no flat block space spanning devices.
      block.writeUInt32LE(0, at + DEVICE_TAG_SIZE + 4);
    });
  }
  b.writeUInt32LE(crc32c(0xffffffff, block.subarray(SUPERBLOCK_OFFSET)), 4);
  return block;
}

// ---- inodes

export interface InodeFields {
  extended: boolean;
  layout: number;
  xattrIcount: number;
  mode: number;
  nlink: number;
  size: number;
  /** raw_blkaddr for files/dirs/symlinks, encoded rdev for devices. */
  u: number;
  ino: number;
  uid: number;
  gid: number;
  mtime: number;
  mtimeNsec: number;
}

export function encodeInode(f: InodeFields, out: Buffer, off: number): number {
  out.writeUInt16LE((f.extended ? 1 : 0) | (f.layout << 1), off);
  out.writeUInt16LE(f.xattrIcount, off + 2);
  out.writeUInt16LE(f.mode, off + 4);
  if (!f.extended) {
    out.writeUInt16LE(f.nlink, off + 6);
    out.writeUInt32LE(f.size, off + 8);
    out.writeUInt32LE(0, off + 12);
    out.writeUInt32LE(f.u >>> 0, off + 16);
    out.writeUInt32LE(f.ino >>> 0, off + 20);
    out.writeUInt16LE(f.uid, off + 24);
    out.writeUInt16LE(f.gid, off + 26);
    out.writeUInt32LE(0, off + 28);
    return COMPACT_INODE_SIZE;
  }
  out.writeUInt16LE(0, off + 6);
  out.writeBigUInt64LE(BigInt(f.size), off + 8);
  out.writeUInt32LE(f.u >>> 0, off + 16);
  out.writeUInt32LE(f.ino >>> 0, off + 20);
  out.writeUInt32LE(f.uid >>> 0, off + 24);
  out.writeUInt32LE(f.gid >>> 0, off + 28);
  out.writeBigUInt64LE(BigInt.asUintN(64, BigInt(f.mtime)), off + 32);
  out.writeUInt32LE(f.mtimeNsec, off + 40);
  out.writeUInt32LE(f.nlink, off + 44);
  out.fill(0, off + 48, off + 64);
  return EXTENDED_INODE_SIZE;
}

/** One chunk index: where chunk i of a chunk-based file lives (device 0 is the image itself). */
export function encodeChunkIndex(device: number, blkaddr: number, out: Buffer, off: number): void {
  out.writeUInt16LE(0, off); // advise: unused by the kernel
  out.writeUInt16LE(device, off + 2);
  out.writeUInt32LE(blkaddr >>> 0, off + 4);
}

/** i_u of a chunk-based inode with chunk indexes. */
export function chunkFormat(chunkBits: number): number {
  return (chunkBits - BLOCK_BITS) | CHUNK_FORMAT_INDEXES;
}

/**
 * Where a chunk-based inode's indexes (or block map) start, relative to the inode: the kernel aligns the
 * end of inode + xattrs to the entry size (ALIGN(iloc + isize + xattr_isize, unit) in erofs_map_blocks).
 * Inodes start on 32-byte slots, so aligning relative to the inode is aligning absolutely.
 */
export function chunkTableOffset(inodeSize: number, xattrSize: number, unit: number): number {
  const end = inodeSize + xattrSize;
  return Math.ceil(end / unit) * unit;
}

// ---- xattrs

export interface XattrName {
  index: number;
  suffix: Buffer;
}

const XATTR_PREFIXES: Array<{ prefix: string; index: number; exact: boolean }> = [
  { prefix: 'user.', index: 1, exact: false },
  { prefix: 'system.posix_acl_access', index: 2, exact: true },
  { prefix: 'system.posix_acl_default', index: 3, exact: true },
  { prefix: 'trusted.', index: 4, exact: false },
  { prefix: 'security.', index: 6, exact: false },
];

const INDEX_PREFIX = new Map(XATTR_PREFIXES.map((p) => [p.index, p.prefix]));

/**
 * Splits a full xattr name (byte string) into erofs' prefix index + suffix. Undefined when erofs cannot
 * store it: erofs only has short prefixes for the namespaces Linux lets files carry.
 */
export function splitXattrName(name: string): XattrName | undefined {
  for (const p of XATTR_PREFIXES) {
    if (p.exact ? name === p.prefix : name.startsWith(p.prefix) && name.length > p.prefix.length) {
      const suffix = Buffer.from(name.slice(p.prefix.length), 'latin1');
      if (suffix.length > MAX_NAME) return undefined;
      return { index: p.index, suffix };
    }
  }
  return undefined;
}

export function joinXattrName(index: number, suffix: Buffer): string | undefined {
  const prefix = INDEX_PREFIX.get(index);
  return prefix === undefined ? undefined : prefix + suffix.toString('latin1');
}

const align4 = (n: number): number => (n + 3) & ~3;

/** Inline xattr body size for entries already validated by splitXattrName. 0 when there are none. */
export function xattrBodySize(entries: ReadonlyArray<{ name: XattrName; value: Buffer }>): number {
  if (entries.length === 0) return 0;
  let size = XATTR_HEADER_SIZE;
  for (const e of entries) size += align4(XATTR_ENTRY_HEADER_SIZE + e.name.suffix.length + e.value.length);
  return size;
}

export function encodeXattrBody(
  entries: ReadonlyArray<{ name: XattrName; value: Buffer }>,
  out: Buffer,
  off: number,
): number {
  const start = off;
  out.fill(0, off, off + XATTR_HEADER_SIZE); // no name filter, no shared xattrs
  off += XATTR_HEADER_SIZE;
  for (const e of entries) {
    const len = XATTR_ENTRY_HEADER_SIZE + e.name.suffix.length + e.value.length;
    out.writeUInt8(e.name.suffix.length, off);
    out.writeUInt8(e.name.index, off + 1);
    out.writeUInt16LE(e.value.length, off + 2);
    e.name.suffix.copy(out, off + 4);
    e.value.copy(out, off + 4 + e.name.suffix.length);
    out.fill(0, off + len, off + align4(len));
    off += align4(len);
  }
  return off - start;
}

/** i_xattr_icount for an inline body of `bodySize` bytes (header counts as one slot). */
export function xattrIcount(bodySize: number): number {
  return bodySize === 0 ? 0 : (bodySize - XATTR_HEADER_SIZE) / 4 + 1;
}

export function xattrBodySizeFromIcount(icount: number): number {
  return icount === 0 ? 0 : XATTR_HEADER_SIZE + 4 * (icount - 1);
}

// ---- directories

export interface DirEntryOut {
  /** Name bytes as a latin1 string. */
  name: string;
  nid: number;
  fileType: number;
}

/**
 * Splits sorted dirents into blocks greedily; returns the index of the first entry of each block and the
 * directory's i_size (full blocks + used bytes of the last one, which is never padded).
 */
export function planDirBlocks(nameLengths: readonly number[]): { starts: number[]; size: number } {
  const starts: number[] = [];
  let used = BLOCK_SIZE + 1;
  for (let i = 0; i < nameLengths.length; i++) {
    const need = DIRENT_SIZE + nameLengths[i];
    if (used + need > BLOCK_SIZE) {
      starts.push(i);
      used = 0;
    }
    used += need;
  }
  return { starts, size: (starts.length - 1) * BLOCK_SIZE + used };
}

/** Encodes entries [from, to) as one dir block; full (non-last) blocks are zero-padded to the block size. */
export function encodeDirBlock(entries: readonly DirEntryOut[], from: number, to: number, pad: boolean): Buffer {
  let used = 0;
  for (let i = from; i < to; i++) used += DIRENT_SIZE + entries[i].name.length;
  const buf = Buffer.alloc(pad ? BLOCK_SIZE : used);
  let nameOff = (to - from) * DIRENT_SIZE;
  for (let i = from; i < to; i++) {
    const e = entries[i];
    const d = (i - from) * DIRENT_SIZE;
    buf.writeBigUInt64LE(BigInt(e.nid), d);
    buf.writeUInt16LE(nameOff, d + 8);
    buf.writeUInt8(e.fileType, d + 10);
    buf.writeUInt8(0, d + 11);
    nameOff += buf.write(e.name, nameOff, 'latin1');
  }
  return buf;
}
