// A small erofs reader for round-trip tests and debugging: superblock, inodes (compact and extended),
// inline and shared xattrs, directories, and data of uncompressed files (flat plain / flat inline).
// Every offset read from the image is bounds-checked, so a corrupt image fails with an error.
import fs from 'node:fs';
import { SmolvmError } from '@smolvm/common';
import {
  BLOCK_SIZE,
  COMPACT_INODE_SIZE,
  DIRENT_SIZE,
  EROFS_MAGIC,
  EXTENDED_INODE_SIZE,
  FEATURE_COMPAT_SB_CHKSUM,
  INODE_SLOT,
  LAYOUT_FLAT_INLINE,
  LAYOUT_FLAT_PLAIN,
  SUPERBLOCK_OFFSET,
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

  private constructor(readonly imagePath: string) {
    this.fd = fs.openSync(imagePath, 'r');
    try {
      this.fileSize = fs.fstatSync(this.fd).size;
      this.superblock = this.readSuperblock();
    } catch (err) {
      fs.closeSync(this.fd);
      throw err;
    }
  }

  static open(imagePath: string): ErofsReader {
    return new ErofsReader(imagePath);
  }

  close(): void {
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
    let done = 0;
    while (done < length) {
      const n = fs.readSync(this.fd, buf, done, length - done, offset + done);
      if (n === 0) throw this.corrupt('unexpected end of image');
      done += n;
    }
    return buf;
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
    };
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
    throw new SmolvmError(
      `${this.imagePath}: nid ${inode.nid} uses data layout ${inode.layout}, which this reader does not support`,
    );
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

/** Opens an image for reading; close() it when done. */
export function openErofs(imagePath: string): ErofsReader {
  return ErofsReader.open(imagePath);
}
