// The merged filesystem tree in memory: names -> inodes, hard links share an inode. File contents are
// not here, only where the data sink put them. Each name remembers which layer placed it, so whiteouts
// and opaque markers remove only what lower layers contributed.
import { EntryProblem } from './errors';
import { checkName } from './paths';

export interface Attrs {
  /** Permission bits incl. setuid/setgid/sticky (07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch; undefined for directories the tree had to invent (they get the build time). */
  mtime?: number;
  mtimeNsec: number;
  /** Full xattr names (byte strings) -> values. */
  xattrs: Map<string, Buffer>;
}

/** Where a regular file's bytes went (see DataSink). */
export interface FileData {
  chunked?: undefined;
  size: number;
  /** First data block; the file's full blocks are contiguous from here. 0 when it has none. */
  blkaddr: number;
  fullBlocks: number;
  /** The partial last block: kept in the tail spool to be inlined, or written padded after the full blocks. */
  tail: { where: 'spool'; offset: number; length: number } | { where: 'block' } | null;
}

/**
 * A chunk-based file whose bytes live on an extra device: chunk i (1 << chunkBits bytes) is at block
 * i << (chunkBits - 12) of `device`, except the chunks in `overrides`, stored as data blocks of the image.
 */
export interface ChunkedData {
  chunked: true;
  size: number;
  chunkBits: number;
  /** 1-based index into the build's extra devices. */
  device: number;
  /** Chunk number -> its first block in the image (and how many blocks it took there). */
  overrides: Map<number, { blkaddr: number; blocks: number }>;
}

interface InodeBase {
  attrs: Attrs;
}
export interface DirInode extends InodeBase {
  kind: 'dir';
  children: Map<string, Dirent>;
}
export interface FileInode extends InodeBase {
  kind: 'file';
  data: FileData | ChunkedData;
}
export interface SymlinkInode extends InodeBase {
  kind: 'symlink';
  target: Buffer;
}
export interface DeviceInode extends InodeBase {
  kind: 'chardev' | 'blockdev';
  major: number;
  minor: number;
}
export interface SpecialInode extends InodeBase {
  kind: 'fifo' | 'socket';
}
export type Inode = DirInode | FileInode | SymlinkInode | DeviceInode | SpecialInode;

export interface Dirent {
  inode: Inode;
  layer: number;
}

/** Linux gives up on path resolution after 40 symlinks (ELOOP); so do we. */
const MAX_SYMLINK_FOLLOWS = 40;

export function newDir(attrs?: Partial<Attrs>): DirInode {
  return {
    kind: 'dir',
    attrs: { mode: 0o755, uid: 0, gid: 0, mtimeNsec: 0, xattrs: new Map(), ...attrs },
    children: new Map(),
  };
}

export class FsTree {
  readonly root: DirInode = newDir();

  /**
   * The directory that holds the entry at `components` (all but the last). Parent components that are
   * symlinks are followed inside the image root, as container runtimes do when they apply a layer;
   * '..' never climbs above the root. Missing directories are created when `createLayer` is given,
   * otherwise the lookup returns undefined.
   */
  parentDir(components: readonly string[], createLayer?: number): DirInode | undefined {
    return this.resolveDir(components.slice(0, -1), createLayer);
  }

  /** The directory at `components` itself, following symlinks all the way. */
  resolveDir(components: readonly string[], createLayer?: number): DirInode | undefined {
    const stack: DirInode[] = [this.root];
    const budget = { follows: MAX_SYMLINK_FOLLOWS };
    return this.walk(stack, components, createLayer, budget) ? stack[stack.length - 1] : undefined;
  }

  /** The entry at `components`, not following a symlink in the last component. */
  lookup(components: readonly string[]): Dirent | undefined {
    if (components.length === 0) return { inode: this.root, layer: -1 };
    return this.parentDir(components)?.children.get(components[components.length - 1]);
  }

  private walk(
    stack: DirInode[],
    components: readonly string[],
    createLayer: number | undefined,
    budget: { follows: number },
  ): boolean {
    for (const c of components) {
      if (c === '' || c === '.') continue;
      if (c === '..') {
        if (stack.length > 1) stack.pop();
        continue;
      }
      const cur = stack[stack.length - 1];
      const entry = cur.children.get(c);
      if (!entry) {
        if (createLayer === undefined) return false;
        checkName(c);
        const dir = newDir();
        cur.children.set(c, { inode: dir, layer: createLayer });
        stack.push(dir);
        continue;
      }
      const node = entry.inode;
      if (node.kind === 'dir') {
        stack.push(node);
      } else if (node.kind === 'symlink') {
        if (--budget.follows < 0) throw new EntryProblem('too many levels of symbolic links in the parent path');
        const target = node.target.toString('latin1');
        if (target.startsWith('/')) stack.length = 1;
        if (!this.walk(stack, target.split('/'), createLayer, budget)) return false;
      } else {
        if (createLayer === undefined) return false;
        throw new EntryProblem(`parent component '${c}' is not a directory`);
      }
    }
    return true;
  }

  /** Places `inode` at dir/name, replacing whatever was there (a replaced directory loses its subtree). */
  put(dir: DirInode, name: string, inode: Inode, layer: number): void {
    checkName(name);
    dir.children.set(name, { inode, layer });
  }

  /**
   * Removes what layers below `layer` contributed at dir/name: the whole entry when a lower layer put it
   * there, otherwise (a directory re-declared in this layer) the lower-layer entries beneath it.
   */
  pruneLower(dir: DirInode, name: string, layer: number): number {
    // Iterative: symlinked parents can make trees far deeper than any path, too deep for recursion.
    let removed = 0;
    const work: Array<[DirInode, string]> = [[dir, name]];
    while (work.length) {
      const [d, n] = work.pop() as [DirInode, string];
      const entry = d.children.get(n);
      if (!entry) continue;
      if (entry.layer < layer) {
        d.children.delete(n);
        removed++;
      } else if (entry.inode.kind === 'dir') {
        for (const child of entry.inode.children.keys()) work.push([entry.inode, child]);
      }
    }
    return removed;
  }

  /** Opaque directory: nothing from lower layers stays visible inside it. */
  makeOpaque(dir: DirInode, layer: number): number {
    let removed = 0;
    for (const child of [...dir.children.keys()]) removed += this.pruneLower(dir, child, layer);
    return removed;
  }
}
