// A small erofs reader for round-trip tests and debugging: superblock, device table, inodes (compact and
// extended), inline and shared xattrs, directories, and data of uncompressed files (flat plain / flat
// inline / chunk-based, whose chunks may live on extra devices given as files). Every offset read from
// the image or a device is bounds-checked, so a corrupt image fails with an error.
import fs from 'node:fs';
import { SmolvmError } from '@smolvm/common';
import {
  BLOCK_BITS,
  BLOCK_MAP_ENTRY_SIZE,
  BLOCK_SIZE,
  CHUNK_FORMAT_BLKBITS_MASK,
  CHUNK_FORMAT_INDEXES,
  CHUNK_INDEX_SIZE,
  COMPACT_INODE_SIZE,
  DEVICE_SLOT_SIZE,
  DEVICE_TAG_SIZE,
  DIRENT_SIZE,
  EROFS_MAGIC,
  EXTENDED_INODE_SIZE,
  FEATURE_COMPAT_SB_CHKSUM,
  FEATURE_INCOMPAT_DEVICE_TABLE,
  INODE_SLOT,
  LAYOUT_CHUNK_BASED,
  LAYOUT_FLAT_INLINE,
  LAYOUT_FLAT_PLAIN,
  NULL_ADDR,
  SUPERBLOCK_OFFSET,
  chunkTableOffset,
  crc32c,
  decodeDev,
  joinXattrName,
  kindFromMode,
  xattrBodySizeFromIcount,
  type InodeKind,
} from './format';

export interface ErofsSuperblock {
  blockSize: number;
  rootNid: number;
  inodeCount: number;
  buildTime: number;
  buildTimeNsec: number;
  blocks: number;
  metaBlkAddr: number;
  xattrBlkAddr: number;
  uuid: Buffer;
  volumeName: string;
  featureCompat: number;
  featureIncompat: number;
  checksumOk: boolean | undefined;
  /** The device table (extra devices, device ids 1..n); empty without FEATURE_INCOMPAT_DEVICE_TABLE. */
  devices: ErofsDeviceInfo[];
}

export interface ErofsDeviceInfo {
  /** The slot's tag up to its first NUL (latin1). */
  tag: string;
  blocks: number;
  /** Start of the device in a flat block space over all devices; 0 when chunks address it by id. */
  mappedBlkAddr: number;
}

/** Where each chunk of a chunk-based file lives; `null` is a hole (reads as zeros). */
export interface ErofsChunkMap {
  chunkBits: number;
  /** 'indexes': 8-byte {device, blkaddr} entries; 'blockmap': plain le32 block addresses on device 0. */
  format: 'indexes' | 'blockmap';
  chunks: Array<{ device: number; blkaddr: number } | null>;
}

export interface OpenErofsOptions {
  /**
   * Files (or block devices) holding the image's extra devices, in device-table order: devices[0] is
   * device 1. Needed only to read chunks that live there; when given, the count must match the table.
   */
  devices?: readonly string[];
}

export interface ErofsEntry {
  /** '/'-rooted path, UTF-8 decoded. */
  path: string;
  /** The same path as raw bytes. */
  pathBytes: Buffer;
  nid: number;
  ino: number;
  type: InodeKind;
  /** Permission bits (07777). */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  mtime: number;
  mtimeNsec: number;
  /** Data layout (0 flat plain, 2 flat inline, ...). */
  layout: number;
  extended: boolean;
  /** Symlink target bytes. */
  linkTarget?: Buffer;
  rdevMajor?: number;
  rdevMinor?: number;
  /** Full names (latin1 byte strings) to values. */
  xattrs: Map<string, Buffer>;
}

interface RawInode {
  nid: number;
  ino: number;
  type: InodeKind;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  mtime: number;
  mtimeNsec: number;
  layout: number;
  extended: boolean;
  rawU: number;
  /** Image offset of the inline xattr body and of inline data. */
  xattrAt: number;
  xattrSize: number;
  inlineAt: number;
}

class CorruptImage extends SmolvmError {}

export class ErofsReader {
  readonly superblock: ErofsSuperblock;
  private readonly fd: number;
  private readonly fileSize: number;
  /** Extra devices opened for reading, index = device id - 1. */
  private readonly devs: Array<{ path: string; fd: number; size: number }> = [];
  /** The kernel masks chunk device ids with this (next power of two above the device count, minus 1). */
  private readonly deviceIdMask: number;

  private constructor(
    readonly imagePath: string,
    opts: OpenErofsOptions,
  ) {
    this.fd = fs.openSync(imagePath, 'r');
    try {
      this.fileSize = fs.fstatSync(this.fd).size;
      this.superblock = this.readSuperblock();
      const n = this.superblock.devices.length;
      this.deviceIdMask = n === 0 ? 0 : 2 ** Math.ceil(Math.log2(n + 1)) - 1;
      if (opts.devices !== undefined && opts.devices.length !== n)
        throw new SmolvmError(`${imagePath}: the image has ${n} extra devices, ${opts.devices.length} were given`, {
          remedy: 'pass one file per device-table entry, in order',
        });
      for (const dev of opts.devices ?? []) {
        const opened = { path: dev, fd: fs.openSync(dev, 'r'), size: 0 };
        this.devs.push(opened);
        // fstat gives block devices size 0; their reads just stop at the end instead.
        const st = fs.fstatSync(opened.fd);
        opened.size = st.isBlockDevice() ? Infinity : st.size;
      }
    } catch (err) {
      this.close();
      throw err;
    }
  }

  static open(imagePath: string, opts: OpenErofsOptions = {}): ErofsReader {
    return new ErofsReader(imagePath, opts);
  }

  close(): void {
    for (const d of this.devs.splice(0)) fs.closeSync(d.fd);
    fs.closeSync(this.fd);
  }

  /** Every entry, depth-first in directory order; the root is '/'. */
  list(): ErofsEntry[] {
    const out: ErofsEntry[] = [];
    const root = this.inode(this.superblock.rootNid);
    const stack: Array<{ inode: RawInode; path: Buffer; depth: number }> = [
      { inode: root, path: Buffer.from('/'), depth: 0 },
    ];
    while (stack.length) {
      const { inode, path, depth } = stack.pop() as { inode: RawInode; path: Buffer; depth: number };
      out.push(this.entry(inode, path));
      if (inode.type !== 'dir') continue;
      if (depth > 4096) throw this.corrupt('directory nesting too deep (loop?)');
      const children = this.readDir(inode).filter((d) => d.name !== '.' && d.name !== '..');
      for (let i = children.length - 1; i >= 0; i--) {
        const d = children[i];
        const child = this.inode(d.nid);
        const childPath = Buffer.concat([
          path,
          path.length > 1 ? Buffer.from('/') : Buffer.alloc(0),
          Buffer.from(d.name, 'latin1'),
        ]);
        stack.push({ inode: child, path: childPath, depth: depth + 1 });
      }
    }
    return out;
  }

  /** Looks a path up through directory entries (symlinks are not followed). */
  lookup(path: string): ErofsEntry | undefined {
    let inode = this.inode(this.superblock.rootNid);
    const parts = Buffer.from(path, 'utf8')
      .toString('latin1')
      .split('/')
      .filter((c) => c !== '');
    for (const part of parts) {
      if (inode.type !== 'dir') return undefined;
      const d = this.readDir(inode).find((e) => e.name === part);
      if (!d) return undefined;
      inode = this.inode(d.nid);
    }
    return this.entry(inode, Buffer.from('/' + parts.join('/'), 'latin1'));
  }

  /** A regular file's (or symlink's) contents. */
  readFile(entryOrPath: ErofsEntry | string): Buffer {
    const e = typeof entryOrPath === 'string' ? this.lookup(entryOrPath) : entryOrPath;
    if (!e) throw new SmolvmError(`${this.imagePath}: no such entry ${String(entryOrPath)}`);
    return this.readData(this.inode(e.nid));
  }

  /** The chunk table of a chunk-based file; undefined for other layouts. */
  chunkMap(entryOrPath: ErofsEntry | string): ErofsChunkMap | undefined {
    const e = typeof entryOrPath === 'string' ? this.lookup(entryOrPath) : entryOrPath;
    if (!e) throw new SmolvmError(`${this.imagePath}: no such entry ${String(entryOrPath)}`);
    const inode = this.inode(e.nid);
    return inode.layout === LAYOUT_CHUNK_BASED ? this.readChunkMap(inode) : undefined;
  }

  /** Directory entries exactly as stored, incl. '.' and '..', in on-disk order. */
  readDirEntries(entry: ErofsEntry): Array<{ name: string; nid: number; fileType: number }> {
    return this.readDir(this.inode(entry.nid));
  }

  private corrupt(msg: string): CorruptImage {
    return new CorruptImage(`${this.imagePath}: corrupt erofs image: ${msg}`);
  }

  private read(offset: number, length: number): Buffer {
    if (offset < 0 || length < 0 || offset + length > this.fileSize)
      throw this.corrupt(`read of ${length} bytes at ${offset} is outside the image`);
    const buf = Buffer.alloc(length);
    this.readInto(this.fd, buf, 0, length, offset, 'image');
    return buf;
  }

  private readInto(fd: number, buf: Buffer, at: number, length: number, offset: number, what: string): void {
    let done = 0;
    while (done < length) {
      const n = fs.readSync(fd, buf, at + done, length - done, offset + done);
      if (n === 0) throw this.corrupt(`unexpected end of ${what}`);
      done += n;
    }
  }

  private readSuperblock(): ErofsSuperblock {
    const b = this.read(SUPERBLOCK_OFFSET, 128);
    if (b.readUInt32LE(0) !== EROFS_MAGIC) throw this.corrupt('bad superblock magic');
    const blkszbits = b.readUInt8(12);
    if (1 << blkszbits !== BLOCK_SIZE) throw this.corrupt(`unsupported block size 2^${blkszbits}`);
    const featureCompat = b.readUInt32LE(8);
    let checksumOk: boolean | undefined;
    if (featureCompat & FEATURE_COMPAT_SB_CHKSUM) {
      const block = this.read(SUPERBLOCK_OFFSET, BLOCK_SIZE - SUPERBLOCK_OFFSET);
      const stored = block.readUInt32LE(4);
      block.writeUInt32LE(0, 4);
      checksumOk = crc32c(0xffffffff, block) === stored;
    }
    return {
      blockSize: BLOCK_SIZE,
      rootNid: b.readUInt16LE(14),
      inodeCount: Number(b.readBigUInt64LE(16)),
      buildTime: Number(b.readBigInt64LE(24)),
      buildTimeNsec: b.readUInt32LE(32),
      blocks: b.readUInt32LE(36),
      metaBlkAddr: b.readUInt32LE(40),
      xattrBlkAddr: b.readUInt32LE(44),
      uuid: Buffer.from(b.subarray(48, 64)),
      volumeName: b.toString('utf8', 64, 80).replace(/\0.*$/s, ''),
      featureCompat,
      featureIncompat: b.readUInt32LE(80),
      checksumOk,
      devices: b.readUInt32LE(80) & FEATURE_INCOMPAT_DEVICE_TABLE ? this.readDeviceTable(b) : [],
    };
  }

  private readDeviceTable(sb: Buffer): ErofsDeviceInfo[] {
    const count = sb.readUInt16LE(86);
    const at = sb.readUInt16LE(88) * DEVICE_SLOT_SIZE;
    const out: ErofsDeviceInfo[] = [];
    for (let i = 0; i < count; i++) {
      const slot = this.read(at + i * DEVICE_SLOT_SIZE, DEVICE_SLOT_SIZE);
      const tag = slot.subarray(0, DEVICE_TAG_SIZE);
      const nul = tag.indexOf(0);
      out.push({
        tag: tag.toString('latin1', 0, nul < 0 ? DEVICE_TAG_SIZE : nul),
        blocks: slot.readUInt32LE(DEVICE_TAG_SIZE),
        mappedBlkAddr: slot.readUInt32LE(DEVICE_TAG_SIZE + 4),
      });
    }
    return out;
  }

  private inode(nid: number): RawInode {
    const sb = this.superblock;
    const at = sb.metaBlkAddr * BLOCK_SIZE + nid * INODE_SLOT;
    const head = this.read(at, COMPACT_INODE_SIZE);
    const format = head.readUInt16LE(0);
    const extended = (format & 1) === 1;
    const layout = (format >> 1) & 7;
    const b = extended ? this.read(at, EXTENDED_INODE_SIZE) : head;
    const modeRaw = b.readUInt16LE(4);
    const type = kindFromMode(modeRaw);
    if (!type) throw this.corrupt(`nid ${nid}: bad mode ${modeRaw.toString(8)}`);
    const xattrSize = xattrBodySizeFromIcount(b.readUInt16LE(2));
    const isize = extended ? EXTENDED_INODE_SIZE : COMPACT_INODE_SIZE;
    const raw: RawInode = {
      nid,
      type,
      mode: modeRaw & 0o7777,
      layout,
      extended,
      xattrAt: at + isize,
      xattrSize,
      inlineAt: at + isize + xattrSize,
      ...(extended
        ? {
            size: Number(b.readBigUInt64LE(8)),
            rawU: b.readUInt32LE(16),
            ino: b.readUInt32LE(20),
            uid: b.readUInt32LE(24),
            gid: b.readUInt32LE(28),
            mtime: Number(b.readBigInt64LE(32)),
            mtimeNsec: b.readUInt32LE(40),
            nlink: b.readUInt32LE(44),
          }
        : {
            size: b.readUInt32LE(8),
            rawU: b.readUInt32LE(16),
            ino: b.readUInt32LE(20),
            uid: b.readUInt16LE(24),
            gid: b.readUInt16LE(26),
            mtime: sb.buildTime,
            mtimeNsec: sb.buildTimeNsec,
            nlink: b.readUInt16LE(6),
          }),
    };
    return raw;
  }

  private entry(inode: RawInode, pathBytes: Buffer): ErofsEntry {
    const e: ErofsEntry = {
      path: pathBytes.toString('utf8'),
      pathBytes,
      nid: inode.nid,
      ino: inode.ino,
      type: inode.type,
      mode: inode.mode,
      uid: inode.uid,
      gid: inode.gid,
      nlink: inode.nlink,
      size: inode.size,
      mtime: inode.mtime,
      mtimeNsec: inode.mtimeNsec,
      layout: inode.layout,
      extended: inode.extended,
      xattrs: this.readXattrs(inode),
    };
    if (inode.type === 'symlink') e.linkTarget = this.readData(inode);
    if (inode.type === 'chardev' || inode.type === 'blockdev') {
      const d = decodeDev(inode.rawU);
      e.rdevMajor = d.major;
      e.rdevMinor = d.minor;
    }
    return e;
  }

  private readXattrs(inode: RawInode): Map<string, Buffer> {
    const out = new Map<string, Buffer>();
    if (inode.xattrSize === 0) return out;
    const body = this.read(inode.xattrAt, inode.xattrSize);
    const shared = body.readUInt8(4);
    let off = 12;
    for (let i = 0; i < shared; i++, off += 4) {
      if (off + 4 > body.length) throw this.corrupt(`nid ${inode.nid}: shared xattr ids overflow`);
      const id = body.readUInt32LE(off);
      this.readXattrEntry(this.superblock.xattrBlkAddr * BLOCK_SIZE + id * 4, out, inode.nid);
    }
    while (off < body.length) {
      off += this.parseXattrEntry(body, off, out, inode.nid);
    }
    return out;
  }

  private readXattrEntry(at: number, out: Map<string, Buffer>, nid: number): void {
    const head = this.read(at, 4);
    const len = 4 + head.readUInt8(0) + head.readUInt16LE(2);
    this.parseXattrEntry(this.read(at, len), 0, out, nid);
  }

  private parseXattrEntry(buf: Buffer, off: number, out: Map<string, Buffer>, nid: number): number {
    if (off + 4 > buf.length) throw this.corrupt(`nid ${nid}: truncated xattr entry`);
    const nameLen = buf.readUInt8(off);
    const index = buf.readUInt8(off + 1);
    const valueLen = buf.readUInt16LE(off + 2);
    const end = off + 4 + nameLen + valueLen;
    if (end > buf.length) throw this.corrupt(`nid ${nid}: xattr entry overflows its body`);
    const name = joinXattrName(index, buf.subarray(off + 4, off + 4 + nameLen));
    if (name === undefined) throw this.corrupt(`nid ${nid}: unknown xattr prefix index ${index}`);
    out.set(name, Buffer.from(buf.subarray(off + 4 + nameLen, end)));
    return (4 + nameLen + valueLen + 3) & ~3;
  }

  private readData(inode: RawInode): Buffer {
    const size = inode.size;
    if (inode.layout === LAYOUT_FLAT_PLAIN) {
      return size === 0 ? Buffer.alloc(0) : this.read(inode.rawU * BLOCK_SIZE, size);
    }
    if (inode.layout === LAYOUT_FLAT_INLINE) {
      const tail = size % BLOCK_SIZE;
      const full = size - tail;
      if (tail === 0) throw this.corrupt(`nid ${inode.nid}: inline layout without a tail`);
      if ((inode.inlineAt % BLOCK_SIZE) + tail > BLOCK_SIZE)
        throw this.corrupt(`nid ${inode.nid}: inline data crosses a block boundary`);
      const head = full > 0 ? this.read(inode.rawU * BLOCK_SIZE, full) : Buffer.alloc(0);
      return Buffer.concat([head, this.read(inode.inlineAt, tail)]);
    }
    if (inode.layout === LAYOUT_CHUNK_BASED) return this.readChunked(inode);
    throw new SmolvmError(
      `${this.imagePath}: nid ${inode.nid} uses data layout ${inode.layout}, which this reader does not support`,
    );
  }

  private readChunkMap(inode: RawInode): ErofsChunkMap {
    const format = inode.rawU & 0xffff;
    if (format & ~(CHUNK_FORMAT_BLKBITS_MASK | CHUNK_FORMAT_INDEXES))
      throw this.corrupt(`nid ${inode.nid}: unknown chunk format 0x${format.toString(16)}`);
    const chunkBits = BLOCK_BITS + (format & CHUNK_FORMAT_BLKBITS_MASK);
    const indexes = (format & CHUNK_FORMAT_INDEXES) !== 0;
    const unit = indexes ? CHUNK_INDEX_SIZE : BLOCK_MAP_ENTRY_SIZE;
    const count = Math.ceil(inode.size / 2 ** chunkBits);
    const isize = inode.extended ? EXTENDED_INODE_SIZE : COMPACT_INODE_SIZE;
    const inodeAt = inode.xattrAt - isize;
    const table = this.read(inodeAt + chunkTableOffset(isize, inode.xattrSize, unit), count * unit);
    const chunks: ErofsChunkMap['chunks'] = [];
    for (let i = 0; i < count; i++) {
      const blkaddr = table.readUInt32LE(i * unit + (indexes ? 4 : 0));
      if (blkaddr === NULL_ADDR) chunks.push(null);
      else chunks.push({ device: indexes ? table.readUInt16LE(i * unit + 2) & this.deviceIdMask : 0, blkaddr });
    }
    return { chunkBits, format: indexes ? 'indexes' : 'blockmap', chunks };
  }

  private readChunked(inode: RawInode): Buffer {
    const map = this.readChunkMap(inode);
    if (this.superblock.devices.some((d) => d.mappedBlkAddr !== 0))
      throw new SmolvmError(`${this.imagePath}: devices in a flat block space (mapped_blkaddr) are not supported`);
    const chunkSize = 2 ** map.chunkBits;
    const out = Buffer.alloc(inode.size);
    map.chunks.forEach((c, i) => {
      if (!c) return; // a hole: zeros
      const length = Math.min(chunkSize, inode.size - i * chunkSize);
      const offset = c.blkaddr * BLOCK_SIZE;
      if (c.device === 0) {
        this.read(offset, length).copy(out, i * chunkSize);
        return;
      }
      const dev = this.devs[c.device - 1];
      if (!dev) {
        const have = this.superblock.devices.length;
        throw new SmolvmError(
          `${this.imagePath}: nid ${inode.nid} chunk ${i} is on device ${c.device}, which was not given ` +
            `(the image has ${have})`,
          { remedy: 'open the image with openErofs(path, { devices: [...] }), one file per extra device' },
        );
      }
      if (offset + length > dev.size)
        throw this.corrupt(`nid ${inode.nid} chunk ${i}: ${length} bytes at ${offset} are outside ${dev.path}`);
      this.readInto(dev.fd, out, i * chunkSize, length, offset, dev.path);
    });
    return out;
  }

  private readDir(inode: RawInode): Array<{ name: string; nid: number; fileType: number }> {
    const data = this.readData(inode);
    const out: Array<{ name: string; nid: number; fileType: number }> = [];
    for (let blk = 0; blk * BLOCK_SIZE < data.length; blk++) {
      const block = data.subarray(blk * BLOCK_SIZE, Math.min(data.length, (blk + 1) * BLOCK_SIZE));
      if (block.length < DIRENT_SIZE) throw this.corrupt(`nid ${inode.nid}: directory block too short`);
      const firstNameOff = block.readUInt16LE(8);
      if (firstNameOff < DIRENT_SIZE || firstNameOff % DIRENT_SIZE !== 0 || firstNameOff > block.length) {
        throw this.corrupt(`nid ${inode.nid}: bad dirent name offset`);
      }
      const count = firstNameOff / DIRENT_SIZE;
      for (let i = 0; i < count; i++) {
        const d = i * DIRENT_SIZE;
        const nameOff = block.readUInt16LE(d + 8);
        let nameEnd = i + 1 < count ? block.readUInt16LE(d + DIRENT_SIZE + 8) : block.length;
        if (i + 1 === count) {
          const nul = block.indexOf(0, nameOff);
          if (nul >= 0 && nul < nameEnd) nameEnd = nul;
        }
        if (nameOff > nameEnd || nameEnd > block.length) throw this.corrupt(`nid ${inode.nid}: bad dirent name bounds`);
        out.push({
          name: block.toString('latin1', nameOff, nameEnd),
          nid: Number(block.readBigUInt64LE(d)),
          fileType: block.readUInt8(d + 10),
        });
      }
    }
    return out;
  }
}

/** Opens an image (and the files of its extra devices, if given) for reading; close() it when done. */
export function openErofs(imagePath: string, opts: OpenErofsOptions = {}): ErofsReader {
  return ErofsReader.open(imagePath, opts);
}
