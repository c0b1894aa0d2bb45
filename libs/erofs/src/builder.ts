// The lower-level API: build an image entry by entry (paths are UTF-8, '/'-separated, relative to the
// image root). Same semantics as applying one tar layer: adding over an existing path replaces it,
// directories merge, missing parents are created (0755 root:root), parent symlinks resolve inside the
// image.
import { UsageError } from '@smolvm/common';
import { EntryProblem } from './errors';
import {
  ImageBuild,
  type DeviceKind,
  type ErofsBuildOptions,
  type ErofsBuildStats,
  type MappedFileSpec,
} from './image-build';
import { splitPath, toByteString } from './paths';
import type { Attrs } from './tree';

export interface EntryAttributes {
  /** Permission bits incl. setuid/setgid/sticky; default 0644 for files, 0755 for directories. */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Seconds since the epoch; default 0. */
  mtime?: number;
  mtimeNsec?: number;
  /** Full names ("security.capability", "user.foo") to raw values. */
  xattrs?: Record<string, Uint8Array> | Iterable<[string, Uint8Array]>;
}

export type FileContent = Uint8Array | string | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

export class ErofsBuilder {
  private readonly build: ImageBuild;
  private done = false;
  private writing = false;

  private constructor(outPath: string, opts: ErofsBuildOptions) {
    this.build = new ImageBuild(outPath, opts);
  }

  /** Starts an image at outPath (a temp file beside it until finish()). */
  static create(outPath: string, opts: ErofsBuildOptions = {}): ErofsBuilder {
    return new ErofsBuilder(outPath, opts);
  }

  mkdir(path: string, attrs: EntryAttributes = {}): this {
    return this.op(path, (c) => this.build.addDir(c, this.attrs(attrs, 0o755), 0));
  }

  async writeFile(path: string, content: FileContent, attrs: EntryAttributes = {}): Promise<this> {
    this.checkOpen();
    // File data streams straight into the image, so one file at a time.
    if (this.writing)
      throw new UsageError(`erofs entry '${path}': await the previous writeFile before starting another`);
    const components = this.components(path);
    const a = this.wrap(path, () => this.attrs(attrs, 0o644));
    this.writing = true;
    try {
      await this.build.addFile(components, a, 0, async (write) => {
        if (typeof content === 'string') write(Buffer.from(content, 'utf8'));
        else if (content instanceof Uint8Array) write(content);
        else if (Symbol.asyncIterator in content) for await (const chunk of content) write(chunk);
        else for (const chunk of content) write(chunk);
      });
    } catch (err) {
      throw this.entryError(path, err);
    } finally {
      this.writing = false;
    }
    return this;
  }

  /**
   * A regular file of `spec.size` bytes whose chunk i (bytes [i*C, (i+1)*C), C = 2^chunkBits) is read
   * from extra device `spec.device` at byte i*C, except the chunks in `spec.overrides`, whose bytes are
   * stored in the image. The device is never read here: the caller vouches for its contents.
   */
  writeMappedFile(path: string, spec: MappedFileSpec, attrs: EntryAttributes = {}): this {
    this.checkOpen();
    // Override chunks stream into the same data area as writeFile's bytes.
    if (this.writing)
      throw new UsageError(`erofs entry '${path}': await the previous writeFile before starting another`);
    return this.op(path, (c) => this.build.addMappedFile(c, this.attrs(attrs, 0o644), 0, spec));
  }

  symlink(path: string, target: string | Uint8Array, attrs: EntryAttributes = {}): this {
    const t = typeof target === 'string' ? Buffer.from(target, 'utf8') : Buffer.from(target);
    return this.op(path, (c) => this.build.addSymlink(c, t, this.attrs(attrs, 0o777), 0));
  }

  /** A hard link at `path` to the existing non-directory at `existingPath`. */
  link(path: string, existingPath: string): this {
    return this.op(path, (c) => this.build.addHardLink(c, this.components(existingPath), 0));
  }

  mknod(path: string, kind: DeviceKind, attrs: EntryAttributes & { major?: number; minor?: number } = {}): this {
    return this.op(path, (c) =>
      this.build.addDevice(c, kind, this.attrs(attrs, 0o644), 0, attrs.major ?? 0, attrs.minor ?? 0),
    );
  }

  /** Writes the metadata and superblock, fsyncs and renames the image into place. */
  async finish(): Promise<ErofsBuildStats> {
    this.checkOpen();
    this.done = true;
    return this.build.finish();
  }

  /** Discards the image; the temp file is removed. */
  async abort(): Promise<void> {
    this.done = true;
    this.build.abort();
  }

  private checkOpen(): void {
    if (this.done) throw new UsageError('this erofs builder has already finished or been aborted');
  }

  private op(path: string, fn: (components: string[]) => void): this {
    this.checkOpen();
    this.wrap(path, () => fn(this.components(path)));
    return this;
  }

  private components(path: string): string[] {
    return this.wrap(path, () => splitPath(toByteString(path)));
  }

  private wrap<T>(path: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw this.entryError(path, err);
    }
  }

  private entryError(path: string, err: unknown): unknown {
    return err instanceof EntryProblem ? new UsageError(`erofs entry '${path}': ${err.message}`, { cause: err }) : err;
  }

  private attrs(a: EntryAttributes, defaultMode: number): Attrs {
    const xattrs: Array<[string, Uint8Array]> = [];
    if (a.xattrs) {
      const entries =
        Symbol.iterator in a.xattrs ? [...(a.xattrs as Iterable<[string, Uint8Array]>)] : Object.entries(a.xattrs);
      for (const [k, v] of entries) xattrs.push([toByteString(k), v]);
    }
    return this.build.attrs(
      {
        mode: a.mode ?? defaultMode,
        uid: a.uid ?? 0,
        gid: a.gid ?? 0,
        mtime: a.mtime ?? 0,
        mtimeNsec: a.mtimeNsec ?? 0,
      },
      xattrs,
    );
  }
}
