// Machine snapshots on disk (docs/architecture.md#snapshots-and-forks): one immutable directory
// per snapshot, `<data>/snapshots/<machine>/<tag>/`, holding a sparse raw copy of each disk, the
// source's record and, for a running source, its saved VM (`vm/`: RAM file, device state,
// qemu.json). Built in a staging directory and renamed into place once complete and fsynced, so
// a killed `snapshot create` leaves a complete snapshot or nothing visible; the staging
// directories of dead processes are swept. Every file is owner-only: a snapshot holds guest RAM.
import fs from 'node:fs';
import path from 'node:path';
import {
  ConflictError,
  NotFoundError,
  SmolvmError,
  UsageError,
  ensurePrivateDir,
  fsyncDir,
  isProcessAlive,
  sha256File,
  smolvmDirs,
  writeJsonAtomic,
} from '@smolvm/common';
import { parseStagingName, stagingName, validateMachineName, type MachineRecord } from '@smolvm/machine-store';

export const SNAPSHOT_SCHEMA_VERSION = 1;
/** What `snapshot.json` is called; written last, so a directory without it is not a snapshot. */
export const SNAPSHOT_META = 'snapshot.json';
/** The saved VM of a running source, in the form the driver restores. */
export const SNAPSHOT_VM_DIR = 'vm';
export const SNAPSHOT_DISKS = { overlay: 'overlay.ext4', storage: 'storage.ext4' } as const;
/** Also copied when the source was made from a pack: its sections, for machinePackBoot. */
export const SNAPSHOT_PACK = 'pack.json';
/** The VM state files that are small enough to hash (the RAM file is only size-checked). */
const HASHED_VM_FILES = ['state', 'qemu.json', 'guest.json'];
const TAG = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MAX_META_BYTES = 1 << 20;
/** Beside the snapshots (a dot name, so never listed as a machine): verify()'s memo per snapshot. */
const VERIFIED_DIR = '.verified';

/** Per hashed file: the identity it had when its hash was found right. */
type Verified = Record<string, { identity: string; sha256: string }>;

export interface SnapshotSummary {
  /** `<machine>:<tag>`, immutable. */
  id: string;
  machine: string;
  tag: string;
  /** RFC 3339. */
  createdAt: string;
  /** Bytes actually allocated on disk (the files are sparse). */
  sizeBytes: number;
  /** The source was running when taken: forks resume its processes. */
  running: boolean;
  /** Machines built on it (forks); it cannot be removed while there are any. */
  dependents: string[];
}

/** What snapshot.json holds. */
export interface SnapshotMeta {
  schemaVersion: typeof SNAPSHOT_SCHEMA_VERSION;
  id: string;
  machine: string;
  tag: string;
  createdAt: string;
  running: boolean;
  /** The source's record when taken (runtime state dropped): what forks inherit. */
  source: MachineRecord;
  /** The saved VM had a NIC (forks of a running snapshot must too). */
  nic: boolean;
  /** How long the source was paused, for a running source (ms). */
  pausedMs?: number;
  /** Imported from a packed snapshot (`machine create --from`): the pack's digest, which names it. */
  pack?: { digest: string };
  /** Every file but snapshot.json, relative: its size and, where cheap, its sha256. */
  files: Record<string, { size: number; sha256?: string }>;
}

export class SnapshotNotFoundError extends NotFoundError {}
/** A snapshot whose files are missing, truncated or altered. */
export class SnapshotDamagedError extends SmolvmError {}

export function snapshotsRoot(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(smolvmDirs(env).data, 'snapshots');
}

/** Splits and validates `<machine>:<tag>`. */
export function parseSnapshotId(id: string): { machine: string; tag: string } {
  const at = id.lastIndexOf(':');
  const machine = at > 0 ? id.slice(0, at) : '';
  const tag = at > 0 ? id.slice(at + 1) : '';
  if (!machine || !TAG.test(tag)) {
    throw new UsageError(`"${id}" is not a snapshot id`, {
      remedy: 'give MACHINE:TAG as `smolvm machine snapshot ls` lists it',
    });
  }
  try {
    validateMachineName(machine);
  } catch (err) {
    throw new UsageError(`"${id}" is not a snapshot id: ${(err as Error).message}`, {
      remedy: 'give MACHINE:TAG as `smolvm machine snapshot ls` lists it',
    });
  }
  return { machine, tag };
}

export function validateTag(tag: string): void {
  if (!TAG.test(tag))
    throw new UsageError(`snapshot tag "${tag}" is not valid`, {
      remedy: 'use 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit',
    });
}

export class SnapshotStore {
  constructor(readonly root: string) {}

  dir(id: string): string {
    const { machine, tag } = parseSnapshotId(id);
    return path.join(this.root, machine, tag);
  }

  private stagingRoot(): string {
    return path.join(this.root, '.staging');
  }

  /** Tags taken for `machine`, whatever their state. */
  tags(machine: string): string[] {
    try {
      return fs.readdirSync(path.join(this.root, machine)).filter((t) => TAG.test(t));
    } catch {
      return [];
    }
  }

  /** The next free integer tag: 1, 2, ... */
  nextTag(machine: string): string {
    const taken = new Set(this.tags(machine));
    let n = 1;
    while (taken.has(String(n))) n++;
    return String(n);
  }

  /** Every snapshot's metadata (damaged ones are listed by readAll's `damaged`). */
  readAll(): { snapshots: SnapshotMeta[]; damaged: Array<{ id: string; reason: string }> } {
    const snapshots: SnapshotMeta[] = [];
    const damaged: Array<{ id: string; reason: string }> = [];
    let machines: string[] = [];
    try {
      machines = fs.readdirSync(this.root).filter((m) => !m.startsWith('.'));
    } catch {
      return { snapshots, damaged };
    }
    for (const machine of machines.sort()) {
      for (const tag of this.tags(machine).sort(byTag)) {
        const id = `${machine}:${tag}`;
        try {
          snapshots.push(this.readMeta(id));
        } catch (err) {
          damaged.push({ id, reason: (err as Error).message });
        }
      }
    }
    return { snapshots, damaged };
  }

  /** snapshot.json, validated against the directory it is in. Does not check the other files. */
  readMeta(id: string): SnapshotMeta {
    const dir = this.dir(id);
    if (!fs.existsSync(dir))
      throw new SnapshotNotFoundError(`snapshot "${id}" does not exist`, {
        remedy: 'see the snapshots with `smolvm machine snapshot ls`',
      });
    const file = path.join(dir, SNAPSHOT_META);
    let meta: SnapshotMeta;
    try {
      const st = fs.statSync(file);
      if (st.size > MAX_META_BYTES) throw new Error(`${st.size} bytes`);
      meta = JSON.parse(fs.readFileSync(file, 'utf8')) as SnapshotMeta;
    } catch (err) {
      throw damagedError(id, `${SNAPSHOT_META} is unreadable (${(err as Error).message})`);
    }
    const { machine, tag } = parseSnapshotId(id);
    if (
      meta?.schemaVersion !== SNAPSHOT_SCHEMA_VERSION ||
      meta.id !== id ||
      meta.machine !== machine ||
      meta.tag !== tag ||
      typeof meta.running !== 'boolean' ||
      typeof meta.createdAt !== 'string' ||
      typeof meta.source !== 'object' ||
      meta.source === null ||
      typeof meta.files !== 'object' ||
      meta.files === null
    ) {
      throw damagedError(id, `${SNAPSHOT_META} does not describe this snapshot`);
    }
    return meta;
  }

  /**
   * The snapshot, checked before use: every file it lists is there with its size (and its hash,
   * for the small ones), and nothing is missing. SnapshotDamagedError names the first problem.
   */
  verify(id: string): SnapshotMeta {
    const meta = this.readMeta(id);
    const dir = this.dir(id);
    const required = [
      SNAPSHOT_DISKS.overlay,
      SNAPSHOT_DISKS.storage,
      ...(meta.running ? ['memory', 'state', 'qemu.json'].map((f) => `${SNAPSHOT_VM_DIR}/${f}`) : []),
    ];
    for (const rel of required) if (!meta.files[rel]) throw damagedError(id, `${rel} is not listed`);
    const verified = this.readVerified(id);
    let hashed = false;
    for (const [rel, want] of Object.entries(meta.files)) {
      const file = path.join(dir, rel);
      if (path.relative(dir, file).startsWith('..')) throw damagedError(id, `${rel} is outside the snapshot`);
      const st = fs.lstatSync(file, { throwIfNoEntry: false, bigint: true });
      if (!st?.isFile()) throw damagedError(id, `${rel} is missing`);
      if (st.size !== BigInt(want.size)) throw damagedError(id, `${rel} is ${st.size} bytes, expected ${want.size}`);
      if (!want.sha256) continue;
      const identity = fileIdentity(st);
      if (verified[rel]?.identity === identity && verified[rel]?.sha256 === want.sha256) continue;
      if (sha256File(file) !== want.sha256) throw damagedError(id, `${rel} was altered (sha256 differs)`);
      verified[rel] = { identity, sha256: want.sha256 };
      hashed = true;
    }
    if (hashed) this.writeVerified(id, verified);
    return meta;
  }

  /**
   * Where verify() remembers the files it hashed by identity (device, inode, size, mtime, ctime:
   * any write or chmod changes one), so the next fork of the snapshot does not hash them again.
   */
  private verifiedPath(id: string): string {
    const { machine, tag } = parseSnapshotId(id);
    return path.join(this.root, VERIFIED_DIR, machine, `${tag}.json`);
  }

  private readVerified(id: string): Verified {
    try {
      const file = this.verifiedPath(id);
      if (fs.statSync(file).size > MAX_META_BYTES) return {};
      const value = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
      return value && typeof value === 'object' && !Array.isArray(value) ? (value as Verified) : {};
    } catch {
      return {};
    }
  }

  /** Best effort: without the memo the next verify hashes again. */
  private writeVerified(id: string, verified: Verified): void {
    try {
      const file = this.verifiedPath(id);
      ensurePrivateDir(path.dirname(file));
      writeJsonAtomic(file, verified);
    } catch {
      // A read-only or full store: nothing lost but time.
    }
  }

  sizeOf(id: string): number {
    return allocatedTree(this.dir(id));
  }

  /**
   * A private staging directory for a new snapshot, named after this process so a leftover of a
   * killed one is recognised (sweep). Staging dirs of dead processes are removed first.
   */
  beginStaging(label: string): string {
    ensurePrivateDir(this.root);
    const staging = this.stagingRoot();
    ensurePrivateDir(staging);
    this.sweep();
    const dir = path.join(staging, stagingName('tmp', label));
    fs.mkdirSync(dir, { mode: 0o700 });
    return dir;
  }

  /** Removes the staging and trash directories of processes that are gone. */
  sweep(): void {
    let entries: string[] = [];
    try {
      entries = fs.readdirSync(this.stagingRoot());
    } catch {
      return;
    }
    for (const entry of entries) {
      const info = parseStagingName(entry);
      if (info && isProcessAlive(info.owner)) continue;
      fs.rmSync(path.join(this.stagingRoot(), entry), { recursive: true, force: true });
    }
  }

  /**
   * Seals `staging` as snapshot `meta.id`: lists its files, makes them read-only, fsyncs them,
   * writes snapshot.json last and renames the directory into place (refused if the id exists).
   */
  commit(staging: string, meta: Omit<SnapshotMeta, 'files' | 'schemaVersion'>): SnapshotMeta {
    const files: SnapshotMeta['files'] = {};
    const verified: Verified = {};
    for (const rel of listFiles(staging)) {
      const file = path.join(staging, rel);
      const hashed = HASHED_VM_FILES.some((f) => rel === `${SNAPSHOT_VM_DIR}/${f}`) || rel === SNAPSHOT_PACK;
      files[rel] = { size: fs.statSync(file).size, ...(hashed ? { sha256: sha256File(file) } : {}) };
      // Read-only, but QEMU (without capabilities) opens a RAM file read-write even to map it privately.
      fs.chmodSync(file, rel === `${SNAPSHOT_VM_DIR}/memory` ? 0o600 : 0o400);
      fsyncPath(file);
      const sha256 = files[rel].sha256;
      if (sha256) verified[rel] = { identity: fileIdentity(fs.statSync(file, { bigint: true })), sha256 };
    }
    const full: SnapshotMeta = { schemaVersion: SNAPSHOT_SCHEMA_VERSION, ...meta, files };
    writeJsonAtomic(path.join(staging, SNAPSHOT_META), full, 0o400);
    for (const dir of [path.join(staging, SNAPSHOT_VM_DIR), staging]) if (fs.existsSync(dir)) fsyncDir(dir);
    const target = this.dir(meta.id);
    const parent = path.dirname(target);
    ensurePrivateDir(parent);
    // rename(2) would replace an empty directory: the check and the rename are under the caller's lock.
    if (fs.existsSync(target))
      throw new ConflictError(`snapshot "${meta.id}" already exists`, { remedy: 'choose another --tag' });
    // A memo left by a removed snapshot of the same id names other files: replaced before the rename.
    this.writeVerified(meta.id, verified);
    fs.renameSync(staging, target);
    fsyncDir(parent);
    return full;
  }

  /** Moves the snapshot out of sight (atomically), then deletes it. */
  remove(id: string): void {
    const dir = this.dir(id);
    const trash = path.join(this.stagingRoot(), stagingName('trash', id.replace(/[^A-Za-z0-9._-]/g, '_')));
    ensurePrivateDir(this.stagingRoot());
    fs.renameSync(dir, trash);
    fsyncDir(path.dirname(dir));
    fs.rmSync(this.verifiedPath(id), { force: true });
    // Read-only files in a writable directory go; the directories need write permission back.
    fs.rmSync(trash, { recursive: true, force: true });
    try {
      fs.rmdirSync(path.dirname(dir));
    } catch {
      // Other tags of that machine remain.
    }
  }
}

function damagedError(id: string, why: string): SnapshotDamagedError {
  return new SnapshotDamagedError(`snapshot "${id}" is damaged: ${why}`, {
    remedy: `remove it with \`smolvm machine snapshot rm ${id}\` and take a new one`,
  });
}

/** Integer tags in numeric order, then the others. */
function byTag(a: string, b: string): number {
  const na = /^\d+$/.test(a) ? Number(a) : NaN;
  const nb = /^\d+$/.test(b) ? Number(b) : NaN;
  if (!Number.isNaN(na) && !Number.isNaN(nb)) return na - nb;
  if (!Number.isNaN(na)) return -1;
  if (!Number.isNaN(nb)) return 1;
  return a.localeCompare(b);
}

function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const d of fs.readdirSync(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${d.name}` : d.name;
    if (d.isDirectory()) out.push(...listFiles(dir, rel));
    else if (d.isFile() && rel !== SNAPSHOT_META) out.push(rel);
  }
  return out;
}

function allocatedTree(dir: string): number {
  let total = 0;
  for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, d.name);
    total += d.isDirectory() ? allocatedTree(p) : fs.lstatSync(p).blocks * 512;
  }
  return total;
}

function fsyncPath(file: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function fileIdentity(st: fs.BigIntStats): string {
  return [st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs].join(':');
}
