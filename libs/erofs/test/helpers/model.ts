// An independent, deliberately naive model of the merged tree (OCI layer semantics), and the check
// that compares an erofs image entry by entry against it — through our reader, and through
// fsck.erofs --extract as an oracle that shares no code with us.
import fs from 'node:fs';
import path from 'node:path';
import { openErofs, type ErofsEntry } from '../../src';
import { fsck, sha256, tempDir } from './tools';

export type ModelType = 'file' | 'dir' | 'symlink' | 'chardev' | 'blockdev' | 'fifo';

export interface ModelInode {
  type: ModelType;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  mtimeNsec: number;
  content?: Buffer;
  target?: string;
  major?: number;
  minor?: number;
  xattrs: Record<string, Buffer>;
  /** Set for directories: name -> entry. */
  children?: Map<string, ModelEntry>;
}

export interface ModelEntry {
  inode: ModelInode;
  layer: number;
}

export const implicitDir = (mtime: number): ModelInode => ({
  type: 'dir',
  mode: 0o755,
  uid: 0,
  gid: 0,
  mtime,
  mtimeNsec: 0,
  xattrs: {},
  children: new Map(),
});

export class Model {
  readonly root: ModelInode;

  constructor(readonly buildTime: number) {
    this.root = implicitDir(buildTime);
  }

  /** The directory holding `p` (created as needed), or undefined when a parent is not a directory. */
  parent(p: string, layer: number, create = true): ModelInode | undefined {
    const parts = p.split('/');
    let cur = this.root;
    for (const part of parts.slice(0, -1)) {
      const e = cur.children?.get(part);
      if (!e) {
        if (!create) return undefined;
        const d = implicitDir(this.buildTime);
        cur.children?.set(part, { inode: d, layer });
        cur = d;
      } else if (e.inode.type === 'dir') cur = e.inode;
      else return undefined;
    }
    return cur;
  }

  /** True when every existing parent component of p is a directory (so the op is well-defined). */
  parentsOk(p: string): boolean {
    const parts = p.split('/');
    let cur: ModelInode | undefined = this.root;
    for (const part of parts.slice(0, -1)) {
      const e: ModelEntry | undefined = cur?.children?.get(part);
      if (!e) return true;
      if (e.inode.type !== 'dir') return false;
      cur = e.inode;
    }
    return true;
  }

  get(p: string): ModelEntry | undefined {
    if (p === '') return { inode: this.root, layer: -1 };
    const parent = this.parent(p, 0, false);
    return parent?.children?.get(p.split('/').pop() as string);
  }

  add(p: string, inode: ModelInode, layer: number): void {
    const dir = this.parent(p, layer) as ModelInode;
    const name = p.split('/').pop() as string;
    const existing = dir.children?.get(name);
    if (existing && existing.inode.type === 'dir' && inode.type === 'dir') {
      Object.assign(existing.inode, { ...inode, children: existing.inode.children });
      existing.layer = layer;
      return;
    }
    dir.children?.set(name, { inode, layer });
  }

  link(p: string, target: string, layer: number): void {
    const t = this.get(target);
    if (!t) throw new Error(`model: no link target ${target}`);
    const dir = this.parent(p, layer) as ModelInode;
    dir.children?.set(p.split('/').pop() as string, { inode: t.inode, layer });
  }

  whiteout(p: string, layer: number): void {
    const dir = this.parent(p, layer);
    if (dir) prune(dir, p.split('/').pop() as string, layer);
  }

  opaque(dirPath: string, layer: number): void {
    const dir = dirPath === '' ? this.root : (this.parent(`${dirPath}/x`, layer) as ModelInode);
    for (const name of [...(dir.children?.keys() ?? [])]) prune(dir, name, layer);
  }

  /** '/'-rooted path -> inode, for comparison. */
  flatten(): Map<string, ModelInode> {
    const out = new Map<string, ModelInode>();
    const walk = (dir: ModelInode, prefix: string): void => {
      for (const [name, e] of dir.children ?? []) {
        const p = `${prefix}/${name}`;
        out.set(p, e.inode);
        if (e.inode.type === 'dir') walk(e.inode, p);
      }
    };
    out.set('/', this.root);
    walk(this.root, '');
    return out;
  }
}

function prune(dir: ModelInode, name: string, layer: number): void {
  const e = dir.children?.get(name);
  if (!e) return;
  if (e.layer < layer) dir.children?.delete(name);
  else if (e.inode.type === 'dir')
    for (const child of [...(e.inode.children?.keys() ?? [])]) prune(e.inode, child, layer);
}

function xattrsOf(e: ErofsEntry): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of e.xattrs) out[Buffer.from(k, 'latin1').toString('utf8')] = v.toString('hex');
  return out;
}

/** Compares an image against the expected tree; also runs fsck.erofs and compares its extraction. */
export function expectImageMatches(
  image: string,
  expected: Map<string, ModelInode>,
  opts: { extract?: boolean } = {},
): void {
  fsck(image);
  const reader = openErofs(image);
  try {
    expect(reader.superblock.checksumOk).toBe(true);
    const entries = reader.list();
    const actual = new Map(entries.map((e) => [e.path, e]));
    expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());

    const names = new Map<ModelInode, number>();
    for (const m of expected.values()) names.set(m, (names.get(m) ?? 0) + 1);
    const nidOf = new Map<ModelInode, number>();
    for (const [p, m] of expected) {
      const e = actual.get(p) as ErofsEntry;
      const subdirs =
        m.type === 'dir' ? [...(m.children?.values() ?? [])].filter((c) => c.inode.type === 'dir').length : 0;
      const got = {
        path: p,
        type: e.type,
        mode: e.mode.toString(8),
        uid: e.uid,
        gid: e.gid,
        mtime: e.mtime,
        mtimeNsec: e.mtimeNsec,
        size: m.type === 'dir' ? undefined : e.size,
        sha: m.type === 'file' ? sha256(reader.readFile(e)) : undefined,
        target: e.linkTarget?.toString('utf8'),
        rdev: e.rdevMajor === undefined ? undefined : `${e.rdevMajor}:${e.rdevMinor}`,
        xattrs: xattrsOf(e),
        nlink: e.nlink,
      };
      const want = {
        path: p,
        type: m.type,
        mode: (m.type === 'symlink' ? 0o777 : m.mode).toString(8),
        uid: m.uid,
        gid: m.gid,
        mtime: m.mtime,
        mtimeNsec: m.mtimeNsec,
        size:
          m.type === 'dir'
            ? undefined
            : m.type === 'file'
              ? (m.content?.length ?? 0)
              : m.type === 'symlink'
                ? Buffer.byteLength(m.target ?? '')
                : 0,
        sha: m.type === 'file' ? sha256(m.content ?? Buffer.alloc(0)) : undefined,
        target: m.target,
        rdev: m.type === 'chardev' || m.type === 'blockdev' ? `${m.major ?? 0}:${m.minor ?? 0}` : undefined,
        xattrs: Object.fromEntries(Object.entries(m.xattrs).map(([k, v]) => [k, v.toString('hex')])),
        nlink: m.type === 'dir' ? 2 + subdirs : (names.get(m) ?? 0),
      };
      expect(got).toEqual(want);
      // Hard links: same model inode <=> same erofs inode.
      const seen = nidOf.get(m);
      if (seen === undefined) {
        expect([...nidOf.values()]).not.toContain(e.nid);
        nidOf.set(m, e.nid);
      } else {
        expect(e.nid).toBe(seen);
      }
    }
  } finally {
    reader.close();
  }
  if (opts.extract !== false) expectExtractionMatches(image, expected);
}

/** fsck.erofs --extract is erofs-utils' own reader: compare what it materialises with lstat. */
export function expectExtractionMatches(image: string, expected: Map<string, ModelInode>): void {
  const dir = tempDir('erofs-extract-');
  const target = path.join(dir, 'x');
  try {
    fsck(image, target);
    for (const [p, m] of expected) {
      const host = path.join(target, p);
      const st = fs.lstatSync(host);
      const got = {
        path: p,
        type: st.isDirectory()
          ? 'dir'
          : st.isFile()
            ? 'file'
            : st.isSymbolicLink()
              ? 'symlink'
              : st.isCharacterDevice()
                ? 'chardev'
                : st.isBlockDevice()
                  ? 'blockdev'
                  : st.isFIFO()
                    ? 'fifo'
                    : 'other',
        sha: st.isFile() ? sha256(fs.readFileSync(host)) : undefined,
        target: st.isSymbolicLink() ? fs.readlinkSync(host) : undefined,
        rdev: st.isCharacterDevice() || st.isBlockDevice() ? devString(st.rdev) : undefined,
        uid: st.uid,
        gid: st.gid,
        // erofs-utils 1.5 drops setuid/setgid/sticky when extracting (images made by its own mkfs too),
        // so only the rwx bits can be compared here; our reader and the kernel mount test cover the rest.
        mode: st.isSymbolicLink() ? undefined : (st.mode & 0o777).toString(8),
      };
      const want = {
        path: p,
        type: m.type,
        sha: m.type === 'file' ? sha256(m.content ?? Buffer.alloc(0)) : undefined,
        target: m.type === 'symlink' ? m.target : undefined,
        rdev: m.type === 'chardev' || m.type === 'blockdev' ? `${m.major ?? 0}:${m.minor ?? 0}` : undefined,
        uid: process.getuid?.() === 0 ? m.uid : st.uid,
        gid: process.getuid?.() === 0 ? m.gid : st.gid,
        mode:
          m.type === 'symlink'
            ? undefined
            : process.getuid?.() === 0
              ? (m.mode & 0o777).toString(8)
              : (st.mode & 0o777).toString(8),
      };
      expect(got).toEqual(want);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** glibc's dev_t split, independent of the library's encoding. */
function devString(rdev: number): string {
  const r = BigInt(rdev);
  const major = ((r >> 8n) & 0xfffn) | ((r >> 32n) & ~0xfffn);
  const minor = (r & 0xffn) | ((r >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}
