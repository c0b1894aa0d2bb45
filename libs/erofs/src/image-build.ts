// One image under construction: the temp output file (data streams into it as entries arrive), the
// tail spool, the merged tree, and the final atomic rename. Paths here are already-split byte-string
// components; callers (layers, directory walk, ErofsBuilder) give errors their context.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SmolvmError, UsageError, fsyncDir, tempPathFor } from '@smolvm/common';
import { DataSink } from './data-sink';
import { EntryProblem } from './errors';
import {
  BLOCK_SIZE,
  DEVICE_TAG_SIZE,
  EXTENDED_INODE_SIZE,
  MAX_CHUNK_BITS,
  MAX_DEV_MAJOR,
  MAX_DEV_MINOR,
  MAX_EXTRA_DEVICES,
  MIN_CHUNK_BITS,
} from './format';
import { INLINE_LIMIT, writeImage } from './image-writer';
import { FsTree, newDir, type Attrs, type DirInode, type Inode } from './tree';
import { sanitizeXattrs, xattrSizeOf } from './xattrs';

export interface ErofsBuildOptions {
  /**
   * Superblock build time in seconds. Inodes whose mtime equals it are stored compact (32 bytes).
   * Default: the most common mtime among the entries, which keeps output deterministic.
   */
  buildTime?: number;
  /** Filesystem UUID (16 bytes). Default: random. */
  uuid?: Uint8Array;
  /** Volume label, at most 16 bytes of UTF-8. */
  volumeName?: string;
  /**
   * Extra devices (the erofs device table, kernel >= 5.16) that chunk-based files written with
   * ErofsBuilder.writeMappedFile read their data from. `tag`: 1 to 64 printable ASCII bytes, which the
   * kernel takes as the device's path when the mount names none (`-o device=`); `blocks`: the
   * device's size in 4 KiB blocks. Device n (1-based) is `devices[n - 1]`. At most 23.
   */
  devices?: ReadonlyArray<ErofsDevice>;
}

export interface ErofsDevice {
  tag: string;
  blocks: number;
}

/** A regular file whose data lives on an extra device (see ErofsBuilder.writeMappedFile). */
export interface MappedFileSpec {
  /** The file's size in bytes. */
  size: number;
  /** 1-based index into ErofsBuildOptions.devices. */
  device: number;
  /** log2 of the chunk size, 12 (4 KiB) to 43; default DEFAULT_CHUNK_BITS. */
  chunkBits?: number;
  /**
   * Chunks whose bytes differ from the device's: stored in the image itself. `data` is at most the
   * chunk's length within the file and is zero-padded to it.
   */
  overrides?: ReadonlyArray<{ chunk: number; data: Uint8Array }>;
}

/**
 * 64 KiB chunks: a 90 MB file needs ~1400 indexes (11 KiB of metadata) and the kernel one map call per
 * 64 KiB read, while each overridden chunk costs at most 64 KiB in the image. Bigger chunks save little
 * more metadata but make every override copy larger; 4 KiB chunks would mean 22,000 indexes.
 */
export const DEFAULT_CHUNK_BITS = 16;

/** Bounds the in-memory index table of one file (8 bytes per chunk: 128 MiB here). */
const MAX_CHUNKS = 1 << 24;

export interface ErofsBuildStats {
  path: string;
  imageBytes: number;
  inodes: number;
  files: number;
  directories: number;
  symlinks: number;
  /** Character/block devices, fifos and sockets. */
  specialFiles: number;
  hardLinks: number;
  /** Logical size of all regular files in the image. */
  fileBytes: number;
  /** Data written for files that later entries deleted or replaced (left in place as dead blocks). */
  deadBytes: number;
  /** Entries removed by whiteouts and opaque directories. */
  whiteoutRemovals: number;
  /** Xattrs that erofs cannot store (unknown namespaces), skipped. */
  droppedXattrs: number;
  /** Compact inodes inherit this mtime. */
  buildTime: number;
}

export type DeviceKind = 'chardev' | 'blockdev' | 'fifo' | 'socket';

/** Longest symlink target Linux accepts (PATH_MAX - 1); it also always fits one block. */
const MAX_SYMLINK = 4095;

export class ImageBuild {
  readonly tree = new FsTree();
  private readonly tmpPath: string;
  private readonly fd: number;
  private readonly spoolFd: number;
  private readonly sink: DataSink;
  private closed = false;
  private readonly devices: ReadonlyArray<ErofsDevice>;
  whiteoutRemovals = 0;
  droppedXattrs = 0;

  constructor(
    readonly outPath: string,
    private readonly opts: ErofsBuildOptions = {},
  ) {
    if (opts.uuid !== undefined && opts.uuid.length !== 16) throw new UsageError('erofs uuid must be 16 bytes');
    if (opts.volumeName !== undefined && Buffer.byteLength(opts.volumeName) > 16) {
      throw new UsageError(`erofs volume name '${opts.volumeName}' is longer than 16 bytes`);
    }
    this.devices = checkDevices(opts.devices ?? []);
    this.tmpPath = tempPathFor(outPath);
    try {
      this.fd = fs.openSync(this.tmpPath, 'wx', 0o600);
    } catch (err) {
      throw ioError(`cannot create ${this.tmpPath}`, err);
    }
    const spoolPath = `${this.tmpPath}.spool`;
    try {
      this.spoolFd = fs.openSync(spoolPath, 'wx+', 0o600);
      // Unlinked while open: the spool can never outlive the process, even after a crash.
      fs.rmSync(spoolPath);
    } catch (err) {
      fs.closeSync(this.fd);
      fs.rmSync(this.tmpPath, { force: true });
      throw ioError(`cannot create ${spoolPath}`, err);
    }
    this.sink = new DataSink(this.fd, this.spoolFd, 1);
  }

  /** Resolves the entry's parent (creating missing directories) and checks the name. */
  private place(components: readonly string[], layer: number): { dir: DirInode; name: string } {
    if (components.length === 0) throw new EntryProblem('only a directory can be the image root');
    const dir = this.tree.parentDir(components, layer);
    if (!dir) throw new EntryProblem('cannot create the parent directory');
    return { dir, name: components[components.length - 1] };
  }

  /** Validated attributes; xattrs erofs cannot store are dropped and counted. */
  attrs(input: Omit<Attrs, 'xattrs'>, xattrs: Iterable<[string, Uint8Array]>): Attrs {
    checkIds(input);
    const { xattrs: kept, dropped } = sanitizeXattrs(xattrs);
    this.droppedXattrs += dropped.length;
    return { ...input, mode: input.mode & 0o7777, xattrs: kept };
  }

  addDir(components: readonly string[], attrs: Attrs, layer: number): void {
    if (components.length === 0) {
      this.tree.root.attrs = attrs;
      return;
    }
    const { dir, name } = this.place(components, layer);
    const existing = dir.children.get(name);
    if (existing?.inode.kind === 'dir') {
      existing.inode.attrs = attrs;
      existing.layer = layer;
      return;
    }
    this.tree.put(dir, name, newDir(attrs), layer);
  }

  /** Streams a regular file; `feed` pushes its bytes through `write` in order. */
  async addFile(
    components: readonly string[],
    attrs: Attrs,
    layer: number,
    feed: (write: (chunk: Uint8Array) => void) => Promise<void>,
  ): Promise<void> {
    const { dir, name } = this.place(components, layer);
    this.sink.beginFile();
    try {
      await feed((chunk) => this.sink.write(chunk));
    } catch (err) {
      this.sink.abandonFile();
      throw err;
    }
    const xattrSize = xattrSizeOf(attrs.xattrs);
    // Decided before the layout knows compact vs extended, so assume the larger inode.
    const data = this.sink.endFile((tail) => EXTENDED_INODE_SIZE + xattrSize + tail <= INLINE_LIMIT);
    this.tree.put(dir, name, { kind: 'file', attrs, data }, layer);
  }

  /**
   * A chunk-based file on an extra device. Only the overridden chunks' bytes are written (to the data
   * area, block-aligned); the device itself is never read.
   */
  addMappedFile(components: readonly string[], attrs: Attrs, layer: number, spec: MappedFileSpec): void {
    const { size, device } = spec;
    const chunkBits = spec.chunkBits ?? DEFAULT_CHUNK_BITS;
    if (!Number.isSafeInteger(size) || size < 0) throw new EntryProblem(`size ${size} must be a whole number >= 0`);
    if (!Number.isInteger(chunkBits) || chunkBits < MIN_CHUNK_BITS || chunkBits > MAX_CHUNK_BITS)
      throw new EntryProblem(
        `chunkBits ${chunkBits} must be a whole number from ${MIN_CHUNK_BITS} to ${MAX_CHUNK_BITS}`,
      );
    if (!Number.isInteger(device) || device < 1 || device > this.devices.length) {
      const have = this.devices.length === 0 ? 'none (ErofsBuildOptions.devices)' : `1..${this.devices.length}`;
      throw new EntryProblem(`unknown device ${device}: this image's extra devices are ${have}`);
    }
    const chunkSize = 2 ** chunkBits;
    const chunks = Math.ceil(size / chunkSize);
    if (chunks > MAX_CHUNKS)
      throw new EntryProblem(`${chunks} chunks is more than ${MAX_CHUNKS}: use a larger chunkBits`);
    const chunkLength = (i: number): number => Math.min(chunkSize, size - i * chunkSize);
    const given = new Map<number, Uint8Array>();
    for (const o of spec.overrides ?? []) {
      if (!Number.isInteger(o.chunk) || o.chunk < 0 || o.chunk >= chunks)
        throw new EntryProblem(`override chunk ${o.chunk} is out of range: the file has ${chunks} chunks`);
      if (given.has(o.chunk)) throw new EntryProblem(`chunk ${o.chunk} is overridden twice`);
      const room = chunkLength(o.chunk);
      if (o.data.length > room)
        throw new EntryProblem(
          `override data for chunk ${o.chunk} is ${o.data.length} bytes, longer than the chunk's ${room}`,
        );
      given.set(o.chunk, o.data);
    }
    const dev = this.devices[device - 1];
    const blocksPerChunk = chunkSize / BLOCK_SIZE;
    for (let i = 0; i < chunks; i++) {
      if (given.has(i)) continue;
      const end = i * blocksPerChunk + Math.ceil(chunkLength(i) / BLOCK_SIZE);
      if (end > dev.blocks)
        throw new EntryProblem(
          `chunk ${i} (blocks ${i * blocksPerChunk}..${end - 1}) reaches past the end of device ${device} ` +
            `(${dev.blocks} blocks): override it`,
        );
    }
    const { dir, name } = this.place(components, layer);
    const overrides = new Map<number, { blkaddr: number; blocks: number }>();
    for (const [chunk, data] of [...given].sort((a, b) => a[0] - b[0])) {
      const blocks = Math.ceil(chunkLength(chunk) / BLOCK_SIZE);
      try {
        overrides.set(chunk, { blkaddr: this.sink.writeBlocks(data, blocks), blocks });
      } catch (err) {
        throw ioError(`writing chunk ${chunk} into the image failed`, err);
      }
    }
    this.tree.put(
      dir,
      name,
      { kind: 'file', attrs, data: { chunked: true, size, chunkBits, device, overrides } },
      layer,
    );
  }

  addSymlink(components: readonly string[], target: Buffer, attrs: Attrs, layer: number): void {
    if (target.length === 0) throw new EntryProblem('symlink has an empty target');
    if (target.length > MAX_SYMLINK) throw new EntryProblem(`symlink target longer than ${MAX_SYMLINK} bytes`);
    if (target.includes(0)) throw new EntryProblem('symlink target contains a NUL byte');
    const { dir, name } = this.place(components, layer);
    // Linux symlinks are always rwxrwxrwx; the mode in an archive means nothing.
    this.tree.put(dir, name, { kind: 'symlink', attrs: { ...attrs, mode: 0o777 }, target }, layer);
  }

  addDevice(components: readonly string[], kind: DeviceKind, attrs: Attrs, layer: number, major = 0, minor = 0): void {
    let inode: Inode;
    if (kind === 'chardev' || kind === 'blockdev') {
      if (
        !Number.isInteger(major) ||
        !Number.isInteger(minor) ||
        major < 0 ||
        minor < 0 ||
        major > MAX_DEV_MAJOR ||
        minor > MAX_DEV_MINOR
      ) {
        throw new EntryProblem(
          `device number ${major}:${minor} out of range (major <= ${MAX_DEV_MAJOR}, minor <= ${MAX_DEV_MINOR})`,
        );
      }
      inode = { kind, attrs, major, minor };
    } else {
      inode = { kind, attrs };
    }
    const { dir, name } = this.place(components, layer);
    this.tree.put(dir, name, inode, layer);
  }

  /** A second name for an existing non-directory; the link target is looked up in the tree built so far. */
  addHardLink(components: readonly string[], targetComponents: readonly string[], layer: number): void {
    const target = this.tree.lookup(targetComponents);
    if (!target) throw new EntryProblem(`hard link target '${targetComponents.join('/')}' does not exist`);
    if (target.inode.kind === 'dir')
      throw new EntryProblem(`hard link target '${targetComponents.join('/')}' is a directory`);
    const { dir, name } = this.place(components, layer);
    this.tree.put(dir, name, target.inode, layer);
  }

  whiteout(components: readonly string[], layer: number): void {
    const { dir, name } = this.place(components, layer);
    this.whiteoutRemovals += this.tree.pruneLower(dir, name, layer);
  }

  opaque(dirComponents: readonly string[], layer: number): void {
    const dir = this.tree.resolveDir(dirComponents, layer);
    if (!dir) throw new EntryProblem('opaque marker inside something that is not a directory');
    this.whiteoutRemovals += this.tree.makeOpaque(dir, layer);
  }

  /** Lays out the metadata, writes the superblock, fsyncs and renames over outPath. */
  finish(): ErofsBuildStats {
    if (this.closed) throw new Error('erofs build already finished');
    let result: ReturnType<typeof writeImage>;
    try {
      result = writeImage(this.fd, this.tree, this.sink, {
        buildTime: this.opts.buildTime,
        uuid: this.opts.uuid ?? crypto.randomBytes(16),
        volumeName: Buffer.from(this.opts.volumeName ?? '', 'utf8'),
        devices: this.devices.map((d) => ({ tag: Buffer.from(d.tag, 'latin1'), blocks: d.blocks })),
      });
      fs.fsyncSync(this.fd);
    } catch (err) {
      this.abort();
      throw ioError(`writing erofs image ${this.outPath} failed`, err);
    }
    this.closeFds();
    try {
      fs.renameSync(this.tmpPath, this.outPath);
      fsyncDir(path.dirname(this.outPath));
    } catch (err) {
      fs.rmSync(this.tmpPath, { force: true });
      throw ioError(`cannot move the erofs image into place at ${this.outPath}`, err);
    }
    return {
      path: this.outPath,
      imageBytes: result.blocks * 4096,
      inodes: result.inodes,
      files: result.files,
      directories: result.directories,
      symlinks: result.symlinks,
      specialFiles: result.specialFiles,
      hardLinks: result.hardLinks,
      fileBytes: result.fileBytes,
      deadBytes: result.deadBlocks * 4096,
      whiteoutRemovals: this.whiteoutRemovals,
      droppedXattrs: this.droppedXattrs,
      buildTime: result.buildTime,
    };
  }

  /** Drops the temp file; safe to call more than once and after finish. */
  abort(): void {
    if (this.closed) return;
    this.closeFds();
    fs.rmSync(this.tmpPath, { force: true });
  }

  private closeFds(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fd of [this.fd, this.spoolFd]) {
      try {
        fs.closeSync(fd);
      } catch {
        // already closed or never fully opened; nothing to release
      }
    }
  }
}

function checkDevices(devices: ReadonlyArray<ErofsDevice>): ReadonlyArray<ErofsDevice> {
  if (devices.length > MAX_EXTRA_DEVICES)
    throw new UsageError(`erofs images here hold at most ${MAX_EXTRA_DEVICES} extra devices, not ${devices.length}`);
  devices.forEach((d, i) => {
    const n = i + 1;
    // The kernel turns the tag into a path when the mount gives none: printable ASCII, no NUL.
    if (
      typeof d.tag !== 'string' ||
      d.tag.length < 1 ||
      d.tag.length > DEVICE_TAG_SIZE ||
      !/^[\x20-\x7e]+$/.test(d.tag)
    )
      throw new UsageError(`erofs device ${n}: tag must be 1 to ${DEVICE_TAG_SIZE} printable ASCII characters`);
    if (!Number.isInteger(d.blocks) || d.blocks < 1 || d.blocks > 0xffffffff)
      throw new UsageError(`erofs device ${n}: blocks ${d.blocks} must be a whole number from 1 to ${0xffffffff}`);
  });
  return devices.map((d) => ({ tag: d.tag, blocks: d.blocks }));
}

function checkIds(a: { uid: number; gid: number; mtime?: number; mtimeNsec: number }): void {
  for (const [what, v] of [
    ['uid', a.uid],
    ['gid', a.gid],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new EntryProblem(`${what} ${v} out of range`);
  }
  if (a.mtime !== undefined && !Number.isSafeInteger(a.mtime)) throw new EntryProblem(`mtime ${a.mtime} out of range`);
  if (!Number.isInteger(a.mtimeNsec) || a.mtimeNsec < 0 || a.mtimeNsec > 999_999_999)
    throw new EntryProblem('mtime nanoseconds out of range');
}

export function ioError(message: string, err: unknown): Error {
  if (err instanceof SmolvmError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new SmolvmError(`${message}: ${detail}`, {
    cause: err,
    remedy: 'check free space and permissions of the image directory',
  });
}
