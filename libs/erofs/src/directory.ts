// Builds an image from a host directory (e.g. the guest agent image). The walk uses lstat and never
// follows a symlink: links are stored as links, and files are opened with O_NOFOLLOW so a file swapped
// for a symlink mid-walk cannot pull in anything from outside the tree.
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '@smolvm/common';
import { EntryProblem } from './errors';
import { ImageBuild, ioError, type ErofsBuildOptions, type ErofsBuildStats } from './image-build';
import type { Attrs } from './tree';

export interface DirectoryBuildOptions extends ErofsBuildOptions {
  /** Store every entry with this owner instead of the host's (e.g. root for an image built unprivileged). */
  owner?: { uid: number; gid: number };
}

const READ_CHUNK = 1 << 20;
const SEP = Buffer.from('/');

/**
 * Node has no xattr API, so host xattrs are not carried over; everything else (type, mode incl.
 * setuid/sticky, owner, mtime, hard links, devices, fifos, sockets) is.
 */
export async function buildErofsFromDirectory(
  dir: string,
  outPath: string,
  opts: DirectoryBuildOptions = {},
): Promise<ErofsBuildStats> {
  const root = path.resolve(dir);
  const out = path.resolve(outPath);
  if (out === root || out.startsWith(root + path.sep))
    throw new UsageError(`erofs output ${outPath} must not be inside the directory ${dir} being imaged`);
  let rootStat: fs.BigIntStats;
  try {
    rootStat = fs.statSync(root, { bigint: true });
  } catch (err) {
    throw new UsageError(`cannot read directory ${dir}: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
  if (!rootStat.isDirectory()) throw new UsageError(`${dir} is not a directory`);

  const build = new ImageBuild(out, opts);
  const buf = Buffer.allocUnsafe(READ_CHUNK);
  const seen = new Map<string, string[]>();
  const attrsOf = (st: fs.BigIntStats): Attrs =>
    build.attrs(
      {
        mode: Number(st.mode & 0o7777n),
        uid: opts.owner?.uid ?? Number(st.uid),
        gid: opts.owner?.gid ?? Number(st.gid),
        mtime: Number(st.mtimeNs / 1_000_000_000n) - (st.mtimeNs < 0n && st.mtimeNs % 1_000_000_000n !== 0n ? 1 : 0),
        mtimeNsec: Number(((st.mtimeNs % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n),
      },
      [],
    );
  let currentHost = root;
  try {
    build.addDir([], attrsOf(rootStat), 0);
    const stack: Array<{ host: Buffer; components: string[] }> = [{ host: Buffer.from(root), components: [] }];
    while (stack.length) {
      const { host, components } = stack.pop() as { host: Buffer; components: string[] };
      currentHost = host.toString();
      const names = fs.readdirSync(host, { encoding: 'buffer' }).sort(Buffer.compare);
      for (const name of names) {
        const childHost = Buffer.concat([host, SEP, name]);
        const child = [...components, name.toString('latin1')];
        currentHost = childHost.toString();
        const st = fs.lstatSync(childHost, { bigint: true });
        const key = `${st.dev}:${st.ino}`;
        if (!st.isDirectory() && st.nlink > 1n) {
          const first = seen.get(key);
          if (first) {
            build.addHardLink(child, first, 0);
            continue;
          }
          seen.set(key, child);
        }
        if (st.isDirectory()) {
          build.addDir(child, attrsOf(st), 0);
          stack.push({ host: childHost, components: child });
        } else if (st.isFile()) {
          await build.addFile(child, attrsOf(st), 0, async (write) => copyFile(childHost, st, buf, write));
        } else if (st.isSymbolicLink()) {
          build.addSymlink(child, fs.readlinkSync(childHost, { encoding: 'buffer' }), attrsOf(st), 0);
        } else if (st.isCharacterDevice() || st.isBlockDevice()) {
          const { major, minor } = splitRdev(st.rdev);
          build.addDevice(child, st.isCharacterDevice() ? 'chardev' : 'blockdev', attrsOf(st), 0, major, minor);
        } else if (st.isFIFO()) {
          build.addDevice(child, 'fifo', attrsOf(st), 0);
        } else if (st.isSocket()) {
          build.addDevice(child, 'socket', attrsOf(st), 0);
        }
      }
    }
    return build.finish();
  } catch (err) {
    build.abort();
    if (err instanceof EntryProblem) throw new UsageError(`${currentHost}: ${err.message}`, { cause: err });
    if (err instanceof UsageError) throw err;
    throw ioError(`building an erofs image from ${dir} at ${currentHost}`, err);
  }
}

function copyFile(hostPath: Buffer, st: fs.BigIntStats, buf: Buffer, write: (chunk: Uint8Array) => void): void {
  const fd = fs.openSync(hostPath, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const now = fs.fstatSync(fd, { bigint: true });
    if (now.ino !== st.ino || now.dev !== st.dev)
      throw new EntryProblem('file was replaced while the image was being built');
    // Exactly the size lstat saw: the inode and its data must agree even if the file is being written.
    let left = Number(st.size);
    while (left > 0) {
      const n = fs.readSync(fd, buf, 0, Math.min(left, buf.length), null);
      if (n === 0) throw new EntryProblem('file shrank while the image was being built');
      write(buf.subarray(0, n));
      left -= n;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** glibc's dev_t layout (gnu_dev_major/minor). */
function splitRdev(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}
