// A machine's disks: sparse files holding ext4, made and maintained with e2fsprogs on the host
// while the machine is stopped. Nothing here writes a disk's full size: inode tables and the
// journal are initialised lazily (and the guest mounts with noinit_itable).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { SmolvmError, UsageError, assertTrustedPath, ensurePrivateDir, fsyncPath, tempPathFor } from '@smolvm/common';
import { writeQcow2Layer } from './qcow2';

const GiB = 1024 ** 3;

export class DiskToolError extends SmolvmError {}

function findTool(name: string): string {
  for (const dir of ['/usr/sbin', '/sbin', '/usr/bin', '/bin', ...(process.env.PATH ?? '').split(':')]) {
    const p = path.join(dir, name);
    if (dir && fs.existsSync(p)) return p;
  }
  const pkg = name === 'qemu-img' ? 'qemu-utils' : name === 'cp' ? 'coreutils' : 'e2fsprogs';
  throw new DiskToolError(`${name} was not found`, {
    remedy: `install ${pkg} (tools/setup installs it; on Debian: apt-get install ${pkg})`,
  });
}

function run(tool: string, args: string[], okCodes: number[] = [0]): string {
  const result = spawnSync(findTool(tool), args, { encoding: 'utf8', timeout: 10 * 60_000 });
  if (result.error || result.status === null || !okCodes.includes(result.status)) {
    const detail = (result.stderr || result.stdout || String(result.error ?? `signal ${result.signal}`))
      .trim()
      .split('\n')
      .slice(-3)
      .join('; ');
    throw new DiskToolError(`${tool} ${args.join(' ')} failed: ${detail}`, {
      remedy: 'check free space on the host and that the disk file is not in use',
    });
  }
  return result.stdout;
}

/**
 * Creates `file` as a sparse ext4 filesystem of `sizeGiB` (atomically: a temp file renamed into
 * place). `shared`: its top directory is world-writable and sticky like /tmp, so an image's
 * non-root user can use /workspace too.
 */
export function createDisk(file: string, sizeGiB: number, label: string, options: { shared?: boolean } = {}): void {
  const tmp = tempPathFor(file);
  try {
    fs.writeFileSync(tmp, '', { mode: 0o600, flag: 'wx' });
    fs.truncateSync(tmp, sizeGiB * GiB);
    // root_owner: the guest's root owns the top directory whichever host user made the disk.
    run('mkfs.ext4', [
      '-q',
      '-F',
      '-m',
      '0',
      '-L',
      label,
      '-E',
      'lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=0:0',
      tmp,
    ]);
    if (options.shared) run('debugfs', ['-w', '-R', 'set_inode_field / mode 041777', tmp]);
    fs.renameSync(tmp, file);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** A new empty disk, as createDisk makes it. */
export interface NewDisk {
  file: string;
  sizeGiB: number;
  label: string;
  shared?: boolean;
}

/**
 * Creates the disks as createDisk does, copied from templates: mkfs.ext4 (and debugfs for a shared
 * disk) spawned per disk was most of a `machine create`. Each template is made once per size,
 * label and kind, in `<cacheDir>/disk-templates/`, by createDisk (atomic: racing processes each
 * rename a complete one), and used only where no other user can have written it (it becomes the
 * guest's disk). One `cp` copies the disks of a directory (sparse, or reflinked), into a staging
 * directory beside them; each copy is fsynced (as mkfs does) and renamed into place. Every disk
 * of a machine then has the same file system UUID as the others of its size and label: the guest
 * mounts by device, and the disks of one VM differ in label.
 */
export function createDisks(disks: NewDisk[], cacheDir: string): void {
  const byDir = new Map<string, NewDisk[]>();
  for (const d of disks) byDir.set(path.dirname(d.file), [...(byDir.get(path.dirname(d.file)) ?? []), d]);
  for (const [dir, group] of byDir) {
    // cp keeps each source's base name in the staging directory: two with one name cannot share it.
    if (new Set(group.map((d) => path.basename(d.file))).size !== group.length) {
      for (const d of group) createDisk(d.file, d.sizeGiB, d.label, { shared: d.shared });
      continue;
    }
    const sources = group.map((d) => diskTemplate(d, cacheDir));
    const staging = fs.mkdtempSync(path.join(dir, '.disks-'));
    try {
      run('cp', ['--reflink=auto', '--sparse=always', ...sources, staging]);
      for (const d of group) {
        const copy = path.join(staging, path.basename(d.file));
        fsyncPath(copy);
        fs.chmodSync(copy, 0o600);
        fs.renameSync(copy, d.file);
      }
    } finally {
      fs.rmSync(staging, { recursive: true, force: true });
    }
  }
}

/** The template of a disk (named as the disk, in a directory of its kind), made if missing. */
function diskTemplate(d: NewDisk, cacheDir: string): string {
  const dir = path.join(cacheDir, 'disk-templates', `${d.label}-${d.sizeGiB}g${d.shared ? '-shared' : ''}`);
  const file = path.join(dir, path.basename(d.file));
  try {
    assertTrustedPath(file, cacheDir);
    if (fs.statSync(file).size === d.sizeGiB * GiB) return file;
  } catch {
    // Missing, or not trustworthy: made again below (renamed over it).
  }
  ensurePrivateDir(path.dirname(dir));
  ensurePrivateDir(dir);
  assertTrustedPath(dir, cacheDir, 'dir');
  createDisk(file, d.sizeGiB, d.label, { shared: d.shared });
  return file;
}

/** Bytes the disk really occupies on the host (it is sparse). */
export function allocatedBytes(file: string): number {
  const st = fs.statSync(file);
  return st.blocks * 512;
}

/** Apparent size in bytes. */
export function diskSize(file: string): number {
  return fs.statSync(file).size;
}

/**
 * Grows the file and the filesystem in it to `sizeGiB` (machine stopped). Shrinking is refused:
 * it could cut off data.
 */
export function growDisk(file: string, sizeGiB: number): void {
  const current = diskSize(file);
  const target = sizeGiB * GiB;
  if (target < current) {
    throw new UsageError(
      `disks can only grow: ${path.basename(file)} is ${current / GiB} GiB, asked for ${sizeGiB} GiB`,
      { remedy: `give a size of at least ${Math.ceil(current / GiB)} GiB` },
    );
  }
  if (target === current) return;
  // resize2fs insists on a freshly checked filesystem; -p repairs only what is safe unattended.
  run('e2fsck', ['-f', '-p', file], [0, 1]);
  fs.truncateSync(file, target);
  run('resize2fs', [file, `${Math.floor(target / 1024)}K`]);
}

/**
 * Returns free blocks to the host (machine stopped): e2fsck discards them, which on a regular
 * file punches holes. Returns the bytes reclaimed.
 */
export function compactDisk(file: string): number {
  const before = allocatedBytes(file);
  run('e2fsck', ['-f', '-p', '-E', 'discard', file], [0, 1]);
  return Math.max(0, before - allocatedBytes(file));
}

/**
 * A copy of the disk (machine stopped) shrunk to its contents, for a pack: checked, without its
 * journal (a pack need not carry an empty one), resized to the minimum. The caller removes it.
 */
export function shrunkCopy(file: string, dest: string, format: DiskFormat = 'raw'): void {
  copyDiskSparse(file, dest, format);
  run('e2fsck', ['-f', '-p', dest], [0, 1]);
  run('tune2fs', ['-O', '^has_journal', dest]);
  run('resize2fs', ['-M', dest]);
}

/** Gives a disk made by shrunkCopy its journal back (after growDisk). */
export function restoreJournal(file: string): void {
  run('tune2fs', ['-O', 'has_journal', file]);
}

/** What a machine's disk file is: raw ext4, or (a snapshot fork) a qcow2 layer over a snapshot's raw disk. */
export type DiskFormat = 'raw' | 'qcow2';

/**
 * A raw copy of `file` at `dest` (owner-only) that takes only the blocks in use: a reflink where
 * the file system has them, else a sparse copy; a qcow2 layer is flattened with its backing
 * file. `-U`: the source may be open in a paused VM (QEMU holds its lock).
 */
export function copyDiskSparse(file: string, dest: string, format: DiskFormat): void {
  if (format === 'qcow2') run('qemu-img', ['convert', '-U', '-q', '-f', 'qcow2', '-O', 'raw', file, dest]);
  else run('cp', ['--reflink=auto', '--sparse=always', file, dest]);
  fs.chmodSync(dest, 0o600);
}

/**
 * A qcow2 layer at `dest` over the raw disk `backing` (read, never written): a fork's disk.
 * Written in-process (qcow2.ts): spawning qemu-img for it was most of a fork's create time.
 */
export function createCowDisk(backing: string, dest: string): void {
  const tmp = tempPathFor(dest);
  try {
    writeQcow2Layer(tmp, backing, diskSize(backing));
    fs.renameSync(tmp, dest);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}
