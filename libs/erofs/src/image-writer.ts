// Lays out and writes everything after the streamed file data: the metadata area (inodes, inline xattrs,
// inline tails) and the blocks of directories and long symlinks, then the superblock.
//
// Image layout:  [block 0: superblock] [file data, streamed] [metadata area] [directory/symlink blocks]
// meta_blkaddr points at the metadata area; every nid is an inode's byte offset in that area / 32, and
// the root inode comes first (nid 1), well within the superblock's 16-bit root_nid.
import {
  BLOCK_SIZE,
  CHUNK_INDEX_SIZE,
  COMPACT_INODE_SIZE,
  EXTENDED_INODE_SIZE,
  FILE_TYPE,
  FEATURE_INCOMPAT_CHUNKED_FILE,
  FEATURE_INCOMPAT_DEVICE_TABLE,
  INODE_SLOT,
  LAYOUT_CHUNK_BASED,
  LAYOUT_FLAT_INLINE,
  LAYOUT_FLAT_PLAIN,
  MODE_TYPE,
  chunkFormat,
  chunkTableOffset,
  encodeChunkIndex,
  encodeDev,
  encodeDirBlock,
  encodeInode,
  encodeSuperblockBlock,
  encodeXattrBody,
  planDirBlocks,
  xattrBodySize,
  xattrIcount,
  type DirEntryOut,
  type XattrName,
} from './format';
import { DataSink, writeFully } from './data-sink';
import type { DirInode, FsTree, Inode } from './tree';
import { sortedXattrs } from './xattrs';

/**
 * An inode, its xattrs and its inline tail are packed into one metadata block whenever together they
 * fit; the packer below fills the gaps this leaves with later inodes.
 */
export const INLINE_LIMIT = BLOCK_SIZE;

/** Metadata blocks kept open for first-fit packing; bounds both search time and pass-2 buffers. */
const OPEN_META_BLOCKS = 32;

export interface LayoutOptions {
  /** Superblock build time; compact inodes inherit it as their mtime. */
  buildTime?: number;
  buildTimeNsec?: number;
  uuid: Uint8Array;
  volumeName: Uint8Array;
  /** Extra devices for the device table; chunk-based files name them by 1-based index. */
  devices?: ReadonlyArray<{ tag: Uint8Array; blocks: number }>;
}

export interface WriteResult {
  blocks: number;
  inodes: number;
  /** Data blocks written for files that are no longer in the tree (deleted, replaced, whited out). */
  deadBlocks: number;
  buildTime: number;
  extendedInodes: number;
  files: number;
  directories: number;
  symlinks: number;
  specialFiles: number;
  /** Names beyond the first for regular files and other non-directories. */
  hardLinks: number;
  fileBytes: number;
}

interface Placed {
  inode: Inode;
  nid: number;
  ino: number;
  nlink: number;
  extended: boolean;
  xattrs: Array<{ name: XattrName; value: Buffer }>;
  xattrSize: number;
  layout: number;
  size: number;
  /** Bytes packed right after the inode and its xattrs: inline data, or the padded chunk index table. */
  inline: number;
  /** Directory/symlink blocks in the area after the metadata (index relative to its start). */
  lateIndex: number;
  lateBlocks: number;
  dir?: { entries: Array<{ name: string; inode: Inode }>; starts: number[] };
  parent?: DirInode;
  /** Bytes in the metadata area (inode + xattrs + inline data). */
  need: number;
  /** Metadata blocks that the packer closed right after placing this inode (pass 2 flushes them). */
  closes: number[];
}

const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;

export function writeImage(fd: number, tree: FsTree, sink: DataSink, opts: LayoutOptions): WriteResult {
  sink.flush();
  const metaStart = sink.nextBlock;

  // Breadth-first order keeps a directory's children close to it and puts the root first.
  const order: Placed[] = [];
  const byInode = new Map<Inode, Placed>();
  const visit = (inode: Inode, parent?: DirInode): Placed => {
    let p = byInode.get(inode);
    if (!p) {
      p = {
        inode,
        nid: 0,
        ino: order.length + 1,
        nlink: 0,
        extended: false,
        xattrs: sortedXattrs(inode.attrs.xattrs),
        xattrSize: 0,
        layout: LAYOUT_FLAT_PLAIN,
        size: 0,
        inline: 0,
        lateIndex: 0,
        lateBlocks: 0,
        parent,
        need: 0,
        closes: [],
      };
      p.xattrSize = xattrBodySize(p.xattrs);
      byInode.set(inode, p);
      order.push(p);
    }
    return p;
  };
  const root = visit(tree.root, tree.root);
  root.nlink = 2;
  for (let i = 0; i < order.length; i++) {
    const p = order[i];
    if (p.inode.kind !== 'dir') continue;
    const dir = p.inode;
    const entries: Array<{ name: string; inode: Inode }> = [
      { name: '.', inode: dir },
      { name: '..', inode: p.parent ?? dir },
    ];
    for (const [name, ent] of dir.children) entries.push({ name, inode: ent.inode });
    // Names are byte strings, so code-unit order is byte order, which is what lookups binary-search on.
    // Visiting in that order also makes nids independent of the order entries arrived in.
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name === '.' || e.name === '..') continue;
      const child = visit(e.inode, dir);
      if (e.inode.kind === 'dir') {
        child.nlink = 2;
        p.nlink++;
      } else {
        child.nlink++;
      }
    }
    const plan = planDirBlocks(entries.map((e) => e.name.length));
    p.dir = { entries, starts: plan.starts };
    p.size = plan.size;
  }

  const buildTime = opts.buildTime ?? commonMtime(order);
  const buildTimeNsec = opts.buildTime !== undefined ? (opts.buildTimeNsec ?? 0) : commonMtimeNsec(order, buildTime);

  // Pass 1: sizes, layouts and positions. Slot 0 stays unused: the kernel reports nids as inode
  // numbers, and readdir() consumers skip entries whose inode number is 0.
  const packer = new MetaPacker();
  let lateCount = 0;
  let liveDataBlocks = 0;
  let extendedInodes = 0;
  let chunkedFiles = 0;
  for (const p of order) {
    const inode = p.inode;
    const a = inode.attrs;
    if (inode.kind === 'file') p.size = inode.data.size;
    else if (inode.kind === 'symlink') p.size = inode.target.length;
    const mtime = a.mtime ?? buildTime;
    const mtimeNsec = a.mtime === undefined ? buildTimeNsec : a.mtimeNsec;
    p.extended =
      mtime !== buildTime ||
      mtimeNsec !== buildTimeNsec ||
      a.uid > 0xffff ||
      a.gid > 0xffff ||
      p.nlink > 0xffff ||
      p.size > 0xffffffff;
    if (p.extended) extendedInodes++;
    const isize = p.extended ? EXTENDED_INODE_SIZE : COMPACT_INODE_SIZE;

    if (inode.kind === 'file' && inode.data.chunked) {
      const d = inode.data;
      chunkedFiles++;
      for (const o of d.overrides.values()) liveDataBlocks += o.blocks;
      p.layout = LAYOUT_CHUNK_BASED;
      const chunks = Math.ceil(d.size / 2 ** d.chunkBits);
      p.inline =
        chunkTableOffset(isize, p.xattrSize, CHUNK_INDEX_SIZE) - isize - p.xattrSize + chunks * CHUNK_INDEX_SIZE;
    } else if (inode.kind === 'file' && !inode.data.chunked) {
      const d = inode.data;
      liveDataBlocks += d.fullBlocks + (d.tail?.where === 'block' ? 1 : 0);
      if (d.tail?.where === 'spool') {
        p.layout = LAYOUT_FLAT_INLINE;
        p.inline = d.tail.length;
      }
    } else if (inode.kind === 'dir' || inode.kind === 'symlink') {
      const tail = p.size % BLOCK_SIZE;
      if (tail > 0 && isize + p.xattrSize + tail <= INLINE_LIMIT) {
        p.layout = LAYOUT_FLAT_INLINE;
        p.inline = tail;
        p.lateBlocks = Math.floor(p.size / BLOCK_SIZE);
      } else {
        p.lateBlocks = Math.ceil(p.size / BLOCK_SIZE);
      }
      p.lateIndex = lateCount;
      lateCount += p.lateBlocks;
    }

    p.need = isize + p.xattrSize + p.inline;
    p.nid = packer.place(p.need, p.closes) / INODE_SLOT;
  }
  if (root.nid !== 1) throw new Error('erofs layout: the root inode must come first');
  const metaBlocks = packer.blocks;
  const lateStart = metaStart + metaBlocks;
  const totalBlocks = lateStart + lateCount;
  if (totalBlocks > 0xffffffff) throw new Error('image would exceed 2^32 blocks');

  // Pass 2: encode, in the same order as pass 1, so metadata blocks complete in the same sequence the
  // packer closed them and only the open ones are ever buffered. Late blocks are written front to back.
  const meta = new MetaBlocks(fd, metaStart);
  const late = new SeqWriter(fd, lateStart * BLOCK_SIZE);
  const nidOf = (inode: Inode): number => {
    const placed = byInode.get(inode);
    if (!placed) throw new Error('erofs layout: dirent to an unplaced inode');
    return placed.nid;
  };
  for (const p of order) {
    const inode = p.inode;
    const a = inode.attrs;
    const isize = p.extended ? EXTENDED_INODE_SIZE : COMPACT_INODE_SIZE;
    const buf = Buffer.alloc(isize + p.xattrSize + p.inline);
    let u = 0;
    if (inode.kind === 'file') u = inode.data.chunked ? chunkFormat(inode.data.chunkBits) : inode.data.blkaddr;
    else if (inode.kind === 'dir' || inode.kind === 'symlink') u = p.lateBlocks > 0 ? lateStart + p.lateIndex : 0;
    else if (inode.kind === 'chardev' || inode.kind === 'blockdev') u = encodeDev(inode.major, inode.minor);
    encodeInode(
      {
        extended: p.extended,
        layout: p.layout,
        xattrIcount: xattrIcount(p.xattrSize),
        mode: MODE_TYPE[inode.kind] | (a.mode & 0o7777),
        nlink: p.nlink,
        size: p.size,
        u,
        ino: p.ino,
        uid: a.uid,
        gid: a.gid,
        mtime: a.mtime ?? buildTime,
        mtimeNsec: a.mtime === undefined ? buildTimeNsec : a.mtimeNsec,
      },
      buf,
      0,
    );
    if (p.xattrSize > 0) encodeXattrBody(p.xattrs, buf, isize);
    const inlineAt = isize + p.xattrSize;

    if (inode.kind === 'file' && inode.data.chunked) {
      const d = inode.data;
      const blocksPerChunk = 2 ** d.chunkBits / BLOCK_SIZE;
      let at = chunkTableOffset(isize, p.xattrSize, CHUNK_INDEX_SIZE);
      for (let i = 0; at < buf.length; i++, at += CHUNK_INDEX_SIZE) {
        const o = d.overrides.get(i);
        if (o) encodeChunkIndex(0, o.blkaddr, buf, at);
        else encodeChunkIndex(d.device, i * blocksPerChunk, buf, at);
      }
    } else if (inode.kind === 'file' && !inode.data.chunked) {
      const tail = inode.data.tail;
      if (tail?.where === 'spool') sink.readTail(tail.offset, tail.length, buf, inlineAt);
    } else if (inode.kind === 'symlink') {
      if (p.inline > 0) inode.target.copy(buf, inlineAt);
      else late.write(padBlock(inode.target));
    } else if (inode.kind === 'dir' && p.dir) {
      const entries: DirEntryOut[] = p.dir.entries.map((e) => ({
        name: e.name,
        nid: nidOf(e.inode),
        fileType: FILE_TYPE[e.inode.kind],
      }));
      const { starts } = p.dir;
      for (let b = 0; b < starts.length; b++) {
        const end = b + 1 < starts.length ? starts[b + 1] : entries.length;
        const isLast = b === starts.length - 1;
        if (isLast && p.inline > 0) encodeDirBlock(entries, starts[b], end, false).copy(buf, inlineAt);
        else late.write(encodeDirBlock(entries, starts[b], end, true));
      }
    }
    meta.put(p.nid * INODE_SLOT, buf);
    for (const block of p.closes) meta.flush(block);
  }
  meta.flushAll();
  late.finish();

  writeFully(
    fd,
    encodeSuperblockBlock({
      rootNid: root.nid,
      inodeCount: order.length,
      buildTime,
      buildTimeNsec,
      blocks: totalBlocks,
      metaBlkAddr: metaStart,
      uuid: opts.uuid,
      volumeName: opts.volumeName,
      featureIncompat:
        (chunkedFiles > 0 ? FEATURE_INCOMPAT_CHUNKED_FILE : 0) |
        ((opts.devices?.length ?? 0) > 0 ? FEATURE_INCOMPAT_DEVICE_TABLE : 0),
      devices: opts.devices,
    }),
    0,
  );
  const counts = { files: 0, directories: 0, symlinks: 0, specialFiles: 0, hardLinks: 0, fileBytes: 0 };
  for (const p of order) {
    const k = p.inode.kind;
    if (k === 'dir') counts.directories++;
    else {
      counts.hardLinks += p.nlink - 1;
      if (k === 'file') {
        counts.files++;
        counts.fileBytes += p.size;
      } else if (k === 'symlink') counts.symlinks++;
      else counts.specialFiles++;
    }
  }
  return {
    blocks: totalBlocks,
    inodes: order.length,
    deadBlocks: sink.blocksWritten - liveDataBlocks,
    buildTime,
    extendedInodes,
    ...counts,
  };
}

/** The most common mtime, so that as many inodes as possible can be compact (they inherit it). */
function commonMtime(order: readonly Placed[]): number {
  const counts = new Map<number, number>();
  for (const p of order) {
    const t = p.inode.attrs.mtime;
    if (t !== undefined) counts.set(t, (counts.get(t) ?? 0) + 1);
  }
  let best = 0;
  let bestCount = 0;
  for (const [t, c] of counts) {
    if (c > bestCount || (c === bestCount && t > best)) {
      best = t;
      bestCount = c;
    }
  }
  return best;
}

function commonMtimeNsec(order: readonly Placed[], sec: number): number {
  const counts = new Map<number, number>();
  for (const p of order) {
    const a = p.inode.attrs;
    if (a.mtime === sec) counts.set(a.mtimeNsec, (counts.get(a.mtimeNsec) ?? 0) + 1);
  }
  let best = 0;
  let bestCount = 0;
  for (const [ns, c] of counts) {
    if (c > bestCount || (c === bestCount && ns < best)) {
      best = ns;
      bestCount = c;
    }
  }
  return best;
}

function padBlock(data: Buffer): Buffer {
  const out = Buffer.alloc(roundUp(Math.max(data.length, 1), BLOCK_SIZE));
  data.copy(out);
  return out;
}

/**
 * First-fit packing of inode records into metadata blocks. A record never crosses a block boundary
 * (inline data must not, and the kernel reads compact inodes from a single block); records larger
 * than a block (huge xattrs) get whole blocks of their own.
 */
class MetaPacker {
  private readonly open: Array<{ block: number; used: number }> = [{ block: 0, used: INODE_SLOT }];
  blocks = 1;

  /** Byte offset in the metadata area; blocks that can take nothing more are reported in `closed`. */
  place(need: number, closed: number[]): number {
    if (need > BLOCK_SIZE) {
      const at = this.blocks * BLOCK_SIZE;
      this.blocks += Math.ceil(need / BLOCK_SIZE);
      return at;
    }
    let slot = this.open.findIndex((b) => BLOCK_SIZE - b.used >= need);
    if (slot < 0) {
      this.open.push({ block: this.blocks++, used: 0 });
      slot = this.open.length - 1;
    }
    const b = this.open[slot];
    const at = b.block * BLOCK_SIZE + b.used;
    b.used = roundUp(b.used + need, INODE_SLOT);
    if (BLOCK_SIZE - b.used < INODE_SLOT) {
      this.open.splice(slot, 1);
      closed.push(b.block);
    }
    if (this.open.length > OPEN_META_BLOCKS) closed.push((this.open.shift() as { block: number }).block);
    return at;
  }
}

/** Buffers the open metadata blocks of pass 2 and writes each once it is complete. */
class MetaBlocks {
  private readonly pending = new Map<number, Buffer>();

  constructor(
    private readonly fd: number,
    private readonly startBlock: number,
  ) {}

  put(offset: number, data: Buffer): void {
    if (data.length > BLOCK_SIZE) {
      writeFully(this.fd, padBlock(data), this.startBlock * BLOCK_SIZE + offset);
      return;
    }
    const block = Math.floor(offset / BLOCK_SIZE);
    let buf = this.pending.get(block);
    if (!buf) {
      buf = Buffer.alloc(BLOCK_SIZE);
      this.pending.set(block, buf);
    }
    data.copy(buf, offset % BLOCK_SIZE);
  }

  flush(block: number): void {
    const buf = this.pending.get(block);
    if (!buf) return;
    writeFully(this.fd, buf, (this.startBlock + block) * BLOCK_SIZE);
    this.pending.delete(block);
  }

  flushAll(): void {
    for (const block of [...this.pending.keys()]) this.flush(block);
  }
}

/** Front-to-back writer that fills gaps with zeros and ends on a block boundary. */
class SeqWriter {
  private readonly buf = Buffer.alloc(1 << 20);
  private len = 0;
  private pos: number;

  constructor(
    private readonly fd: number,
    start: number,
  ) {
    this.pos = start;
  }

  private get end(): number {
    return this.pos + this.len;
  }

  write(data: Buffer): void {
    let off = 0;
    while (off < data.length) {
      if (this.len === this.buf.length) this.flush();
      const n = Math.min(data.length - off, this.buf.length - this.len);
      data.copy(this.buf, this.len, off, off + n);
      this.len += n;
      off += n;
    }
  }

  private zeros(n: number): void {
    while (n > 0) {
      if (this.len === this.buf.length) this.flush();
      const k = Math.min(n, this.buf.length - this.len);
      this.buf.fill(0, this.len, this.len + k);
      this.len += k;
      n -= k;
    }
  }

  finish(): void {
    this.zeros(roundUp(this.end, BLOCK_SIZE) - this.end);
    this.flush();
  }

  private flush(): void {
    writeFully(this.fd, this.buf.subarray(0, this.len), this.pos);
    this.pos += this.len;
    this.len = 0;
  }
}
