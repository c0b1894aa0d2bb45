// The boot snapshot cache (docs/architecture.md#warm-starts, issue 7): one snapshot per VM shape, taken once the agent
// of a fresh VM is ready and has run its warm-ups (before any user work: nothing of the user's is
// in it), under <cache>/vmsnap/<key>/, where the key hashes everything the saved state depends
// on. Bare VMs restore a guest already running in their root (the agent's own, or the base image
// attached as a disk), which is built the same way for every run; runs with an image restore a
// guest without a root and build it on their image. A snapshot directory only ever appears complete (built in a private
// staging directory, then renamed), so readers never see a partial one; two processes that build the
// same one race on the rename and the loser discards its copy. Everything is owner-only (0700
// directories, 0600 files).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  UntrustedPathError,
  assertTrustedPath,
  currentProcessIdentity,
  ensurePrivateDir,
  fsyncDir,
  isProcessAlive,
  sha256File,
  writeFileAtomic,
  type ProcessIdentity,
} from '@smolvm/common';
import { SnapshotError, type SnapshotCapability } from '@smolvm/driver-api';
import type { AgentImage } from '@smolvm/agent-image';

/** Bumped whenever what a snapshot holds or how it is restored changes. */
const FORMAT = 2;
const META_FILE = 'meta.json';
/** The per-run image disk's placeholder: sparse, larger than any image (see imageSlotPath). */
const SLOT_FILE = 'slot.img';
export const IMAGE_SLOT_BYTES = 2 ** 40;
/**
 * Placeholders of a persistent machine's overlay and storage disks: sparse, never read or written
 * by the saved guest. The guest keeps the capacity it saw at boot, so a machine disk larger than
 * this cannot be attached to a restore (that machine boots).
 */
const MACHINE_SLOT_FILES = { overlay: 'overlay-slot.img', storage: 'storage-slot.img' } as const;
export const MACHINE_SLOT_BYTES = 2 ** 43;

/** What must be equal between the VM that was saved and the one that restores it. */
export interface SnapshotShape {
  kernel: string;
  agentImage: AgentImage;
  cpus: number;
  memoryMiB: number;
  /** Number of 9p shares (tags vol0..N-1); their host paths may differ. */
  shares: number;
  network: boolean;
  /**
   * 'bare': no image disk, and the saved guest already runs in its bare root (restores only
   * configure the run). 'image-slot': an image disk placeholder, and no root yet (a restore
   * points the slot at the run's image and builds the root on it). `{ image }`: an image known
   * before any run (the base of bare VMs): its disk is attached and the saved guest already runs
   * in the root built on it, as a bare one does; `id` is its identity (manifest digest), `file`
   * its erofs, whose identity is part of the key (a rebuilt file is another snapshot).
   * 'share-root': a 9p share with host ownership (tag root) that a restore points at the run's
   * directory and makes the root.
   */
  root: 'bare' | 'image-slot' | 'share-root' | { image: { id: string; file: string } };
  /**
   * A persistent machine's overlay and storage disks, in writable slots after the image slot.
   * The root is then never built before the save (it lives on the machine's overlay disk): a
   * 'bare' root means the agent image's userland as the lower layer, nothing more.
   */
  machineDisks: boolean;
  /** The sha256 of the packed executable the agent's node is read from (a disk after all others). */
  runtime?: string;
  /** Shapes that must not replace the default family's snapshots (a pack's own kernel and agent). */
  family?: string;
}

function rootDevices(shape: SnapshotShape): string[] {
  if (shape.root === 'bare') return shape.machineDisks ? [] : ['root:bare'];
  if (shape.root === 'image-slot') return ['blk:image-slot:ro'];
  if (shape.root === 'share-root') return [];
  return [`blk:image:ro root:image:${shape.root.image.id}`];
}

export interface SnapshotKey {
  key: string;
  /** The shape alone (no versions): snapshots with the same one replace each other. */
  shapeKey: string;
  fields: Record<string, string>;
}

interface SnapshotMeta {
  format: number;
  key: string;
  shapeKey: string;
  fields: Record<string, string>;
  /** The agent's pid at save time: a restored VM must greet with it (the right VM came back). */
  agentPid: number;
  stateSha256: string;
  files: Record<string, number>;
  createdAt: string;
}

export interface FoundSnapshot {
  dir: string;
  agentPid: number;
  /** The sha256 of its device state, as checked: an early start that runs its guest checks it again (RunRecipe). */
  stateSha256: string;
}

export function snapshotRoot(cacheDir: string): string {
  return path.join(cacheDir, 'vmsnap');
}

/** Identity of a file without reading it: a replaced or rebuilt kernel changes it. */
function fileIdentity(file: string): string {
  const real = fs.realpathSync(file);
  const st = fs.statSync(real);
  return `${real} size=${st.size} mtime=${st.mtimeMs} ctime=${st.ctimeMs} ino=${st.ino}`;
}

/** Digests remembered per file identity: `<cache>/kernel-digests`, beside the snapshot root, not in it. */
const DIGESTS_DIR = 'kernel-digests';
/** Remembered digests kept: one per kernel file identity seen, so a few suffice; the oldest go first. */
const MAX_DIGESTS = 32;

/**
 * The sha256 of a kernel's bytes, remembered per file identity in `<cache>/kernel-digests`: the same
 * kernel copied elsewhere (a pack's kernel section imported into an emptied cache) keys the same
 * snapshots, and a changed file (any write changes its identity) is hashed again, so it never
 * reuses a snapshot of other bytes. Without `root` (or with an unusable memo) it hashes every time.
 */
export function kernelDigest(kernel: string, root?: string): string {
  const identity = fileIdentity(kernel);
  if (!root) return sha256File(kernel);
  const dir = path.join(path.dirname(root), DIGESTS_DIR);
  const memo = path.join(dir, crypto.createHash('sha256').update(identity).digest('hex').slice(0, 32));
  try {
    // Written by this user only: another's memo could name any digest.
    assertTrustedPath(memo, path.dirname(root));
    const [id, digest] = fs.readFileSync(memo, 'utf8').split('\n');
    if (id === identity && /^[0-9a-f]{64}$/.test(digest ?? '')) return digest;
  } catch {
    // Missing, damaged or untrusted: hashed and written again below.
  }
  const digest = sha256File(kernel);
  // Read after the hash: a file changed while it was read gets no memo (its next use hashes it again).
  if (fileIdentity(kernel) !== identity) return digest;
  try {
    ensurePrivateDir(dir);
    writeFileAtomic(memo, `${identity}\n${digest}`);
    pruneDigests(dir);
  } catch {
    // Only a memo: the next key hashes the kernel again.
  }
  return digest;
}

function pruneDigests(dir: string): void {
  const names = safeReaddir(dir).filter((n) => /^[0-9a-f]{32}$/.test(n));
  if (names.length <= MAX_DIGESTS) return;
  const byAge = names
    .map((n) => ({ n, t: fs.statSync(path.join(dir, n), { throwIfNoEntry: false })?.mtimeMs ?? 0 }))
    .sort((a, b) => a.t - b.t);
  for (const { n } of byAge.slice(0, names.length - MAX_DIGESTS)) fs.rmSync(path.join(dir, n), { force: true });
}

/** With `root` (the snapshot root), the kernel's digest is remembered beside it (kernelDigest). */
export async function snapshotKey(
  driverName: string,
  capability: SnapshotCapability,
  shape: SnapshotShape,
  root?: string,
): Promise<SnapshotKey> {
  const machineDevices = shape.machineDisks ? ['blk:overlay-slot:rw', 'blk:storage-slot:rw'] : [];
  const shares = [
    ...Array.from({ length: shape.shares }, (_, i) => `9p:vol${i}`),
    ...(shape.root === 'share-root' ? ['9p:root:host-ownership'] : []),
  ];
  const devices = [
    'blk:agent:ro',
    ...rootDevices(shape),
    ...machineDevices,
    ...shares,
    ...(shape.runtime ? ['blk:runtime:ro'] : []),
    shape.network ? 'net' : 'no-net',
  ];
  const shapeFields = {
    driver: driverName,
    cpus: String(shape.cpus),
    memoryMiB: String(shape.memoryMiB),
    devices: devices.join(' '),
    ...(shape.family ? { family: shape.family } : {}),
  };
  const fields = {
    format: String(FORMAT),
    ...shapeFields,
    hypervisor: await capability.fingerprint(),
    // By content: a copy of the same kernel (a pack's, imported again) restores the same snapshots.
    kernel: `sha256:${kernelDigest(shape.kernel, root)}`,
    cmdline: shape.agentImage.kernelArgs.join(' '),
    agentImage: shape.agentImage.key,
    ...(shape.runtime ? { runtime: `sha256:${shape.runtime}` } : {}),
    ...(typeof shape.root === 'object' ? { rootImage: fileIdentity(shape.root.image.file) } : {}),
  };
  return { key: hash(fields), shapeKey: hash(shapeFields), fields };
}

function hash(value: Record<string, string>): string {
  return crypto.createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 32);
}

function readMeta(dir: string): SnapshotMeta | undefined {
  try {
    const meta = JSON.parse(fs.readFileSync(path.join(dir, META_FILE), 'utf8')) as SnapshotMeta;
    return meta && typeof meta === 'object' && meta.format === FORMAT ? meta : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The snapshot for `key`, checked (metadata, every file's size, the device state's hash), or a
 * note saying why there is none usable. A damaged one is moved out of the way so it is rebuilt.
 */
export function findSnapshot(root: string, k: SnapshotKey): FoundSnapshot | { note: string } {
  const dir = path.join(root, k.key);
  if (!fs.existsSync(dir)) return { note: explainMiss(root, k) };
  // A snapshot is a running guest: one another user could have written is not restored (nor removed).
  const untrusted = untrustedSnapshot(root, dir);
  if (untrusted) return { note: `the boot snapshot ${dir} is not used: ${untrusted}` };
  const problem = checkSnapshot(dir, k);
  if (problem) {
    discardSnapshot(root, dir);
    return { note: `the boot snapshot ${dir} is unusable (${problem})` };
  }
  const meta = readMeta(dir) as SnapshotMeta;
  return { dir, agentPid: meta.agentPid, stateSha256: meta.stateSha256 };
}

/** Why another user could have written the snapshot in `dir` (its metadata or a file it lists), if they could. */
function untrustedSnapshot(root: string, dir: string): string | undefined {
  const cache = path.dirname(root);
  try {
    assertTrustedPath(dir, cache, 'dir');
    for (const name of [META_FILE, ...Object.keys(readMeta(dir)?.files ?? {})]) {
      const file = path.join(dir, name);
      if (fs.existsSync(file)) assertTrustedPath(file, cache);
    }
    return undefined;
  } catch (err) {
    if (err instanceof UntrustedPathError) return err.message;
    return undefined; // damaged: checkSnapshot says how
  }
}

function checkSnapshot(dir: string, k: SnapshotKey): string | undefined {
  const meta = readMeta(dir);
  if (!meta) return `no valid ${META_FILE}`;
  if (meta.key !== k.key || JSON.stringify(meta.fields) !== JSON.stringify(k.fields))
    return 'it was made for another VM';
  for (const [name, size] of Object.entries(meta.files)) {
    const actual = fs.statSync(path.join(dir, name), { throwIfNoEntry: false })?.size;
    if (actual !== size) return `${name} is ${actual ?? 'missing'} bytes, expected ${size}`;
  }
  if (sha256File(path.join(dir, 'state')) !== meta.stateSha256) return 'its device state does not match its checksum';
  return undefined;
}

/** Why no snapshot has this key: none yet, or one of the same shape made with other inputs. */
function explainMiss(root: string, k: SnapshotKey): string {
  for (const name of safeReaddir(root)) {
    if (name.startsWith('.')) continue;
    const meta = readMeta(path.join(root, name));
    if (!meta || meta.shapeKey !== k.shapeKey) continue;
    const changed = Object.keys(k.fields).filter((f) => meta.fields[f] !== k.fields[f]);
    if (changed.length) return `the boot snapshot for this VM shape was made with another ${changed.join(', ')}`;
  }
  return 'no boot snapshot for this VM shape yet';
}

export const UNUSED_SNAPSHOT_MS = 24 * 3600_000;

/** Moves a snapshot out of sight in one step, then deletes it (running restores keep their open files). */
export function discardSnapshot(root: string, dir: string): void {
  const trash = path.join(root, `.trash-${crypto.randomBytes(6).toString('hex')}`);
  try {
    fs.renameSync(dir, trash);
  } catch {
    return; // someone else removed or replaced it
  }
  fs.rmSync(trash, { recursive: true, force: true });
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** A private directory to build one snapshot in; `commit` publishes it under its key. */
export class SnapshotStaging {
  readonly dir: string;
  /** Where 9p shares point while saving: the saved guest has mounted none of them. */
  readonly emptyShare: string;
  /** The image disk placeholder, for 'image-slot' snapshots. */
  readonly imageSlot?: string;
  /** The machine disks' placeholders, for machine shapes. */
  readonly machineSlots?: { overlayDisk: string; storageDisk: string };

  constructor(
    private readonly root: string,
    options: { imageSlot: boolean; machineDisks?: boolean },
  ) {
    ensurePrivateDir(root);
    sweepStaging(root);
    this.dir = fs.mkdtempSync(path.join(root, '.staging-'));
    fs.chmodSync(this.dir, 0o700);
    fs.writeFileSync(path.join(this.dir, 'owner.json'), JSON.stringify(currentProcessIdentity()), { mode: 0o600 });
    this.emptyShare = path.join(this.dir, 'empty');
    fs.mkdirSync(this.emptyShare, { mode: 0o700 });
    if (options.imageSlot) this.imageSlot = this.placeholder(SLOT_FILE, IMAGE_SLOT_BYTES);
    if (options.machineDisks) {
      this.machineSlots = {
        overlayDisk: this.placeholder(MACHINE_SLOT_FILES.overlay, MACHINE_SLOT_BYTES),
        storageDisk: this.placeholder(MACHINE_SLOT_FILES.storage, MACHINE_SLOT_BYTES),
      };
    }
  }

  private placeholder(name: string, bytes: number): string {
    const file = path.join(this.dir, name);
    fs.writeFileSync(file, '', { mode: 0o600 });
    fs.truncateSync(file, bytes);
    return file;
  }

  /**
   * Writes the metadata and renames the directory to its key. False when another process
   * published the same snapshot first: ours is discarded and theirs serves.
   */
  commit(k: SnapshotKey, agentPid: number): boolean {
    fs.rmSync(this.emptyShare, { recursive: true, force: true });
    fs.rmSync(path.join(this.dir, 'owner.json'), { force: true });
    const files: Record<string, number> = {};
    for (const name of fs.readdirSync(this.dir)) {
      const file = path.join(this.dir, name);
      fs.chmodSync(file, 0o600);
      files[name] = fs.statSync(file).size;
    }
    if (!('state' in files)) throw new SnapshotError('the driver saved no device state file');
    const meta: SnapshotMeta = {
      format: FORMAT,
      key: k.key,
      shapeKey: k.shapeKey,
      fields: k.fields,
      agentPid,
      stateSha256: sha256File(path.join(this.dir, 'state')),
      files,
      createdAt: new Date().toISOString(),
    };
    const metaFile = path.join(this.dir, META_FILE);
    fs.writeFileSync(metaFile, JSON.stringify(meta, null, 2) + '\n', { mode: 0o600 });
    const fd = fs.openSync(metaFile, 'r');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fsyncDir(this.dir);
    const target = path.join(this.root, k.key);
    try {
      fs.renameSync(this.dir, target);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      this.discard();
      return false;
    }
    fsyncDir(this.root);
    this.evictOlder(k);
    return true;
  }

  discard(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * Snapshots that will never be restored again: the same shape made with older inputs (kernel,
   * agent, QEMU), another snapshot format, and any no restore has used for a day (each holds up
   * to the guest's RAM on disk). Restores mark their snapshot directory used (common's markUsed).
   */
  private evictOlder(k: SnapshotKey): void {
    const cutoff = Date.now() - UNUSED_SNAPSHOT_MS;
    for (const name of safeReaddir(this.root)) {
      if (name.startsWith('.') || name === k.key) continue;
      const dir = path.join(this.root, name);
      const meta = readMeta(dir);
      const unused = (fs.statSync(dir, { throwIfNoEntry: false })?.mtimeMs ?? 0) < cutoff;
      if (!meta || meta.shapeKey === k.shapeKey || unused) discardSnapshot(this.root, dir);
    }
  }
}

/** Staging directories whose builder died (SIGKILL mid-save). */
function sweepStaging(root: string): void {
  for (const name of safeReaddir(root)) {
    if (!name.startsWith('.staging-') && !name.startsWith('.trash-')) continue;
    const dir = path.join(root, name);
    let owner: ProcessIdentity | undefined;
    try {
      owner = JSON.parse(fs.readFileSync(path.join(dir, 'owner.json'), 'utf8')) as ProcessIdentity;
    } catch {
      owner = undefined;
    }
    const ageMs = Date.now() - (fs.statSync(dir, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
    if (owner ? !isProcessAlive(owner) : ageMs > 600_000) fs.rmSync(dir, { recursive: true, force: true });
  }
}
