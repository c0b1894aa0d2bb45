// Packed snapshots (docs/smolmachine.md, format version 2): a running machine's snapshot
// serialized as a .smolmachine, and imported back into the snapshot store, where machines are
// made from it as from any snapshot (`machine create --from` on such a pack).
//
// A saved guest resumes only with the very kernel, agent image and root image it ran from (its
// RAM holds their pages and mounts). So a running snapshot records which files those were
// (vm/guest.json, by file identity: the cache names them by content and replaces, never rewrites,
// them), and the pack carries exactly those files.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { ConflictError, SmolvmError, UsageError, writeJsonAtomic } from '@smolvm/common';
import { SCHEMA_VERSION, type MachineRecord } from '@smolvm/machine-store';
import {
  importBootSections,
  type PackFile,
  type PackManifest,
  type PackSnapshot,
  type SectionName,
  writeSection,
} from '@smolvm/pack/local';
import type { GuestFile, GuestFiles } from '@smolvm/runtime';
import type { Machines } from './machines';
import { SNAPSHOT_DISKS, SNAPSHOT_PACK, SNAPSHOT_VM_DIR, type SnapshotMeta } from './snapshot-store';

/** In a running snapshot's vm/: the files its guest ran from. */
export const GUEST_FILES = 'guest.json';
const LOCK_TIMEOUT_MS = 10 * 60_000;

interface RecordedFile extends GuestFile {
  size: number;
  /** File identity when the snapshot was taken: a changed or replaced file no longer matches. */
  dev: number;
  ino: number;
  mtimeMs: number;
}

interface GuestFilesRecord {
  driver: string;
  kernel: RecordedFile;
  agentImage: RecordedFile;
  image?: RecordedFile;
}

/** What qemu.json in a snapshot's vm/ holds (written by @smolvm/qemu; read here to pack it). */
interface QemuInfo {
  qemu: { major: number; minor: number; micro: number };
  package: string;
  memoryMiB: number;
}

/** Writes vm/guest.json for a running snapshot (no hashing: identities only, so the pause is not longer). */
export function recordGuestFiles(stateDir: string, files: GuestFiles): void {
  const recorded = (f: GuestFile): RecordedFile => {
    const st = fs.statSync(f.path);
    return { ...f, size: st.size, dev: st.dev, ino: st.ino, mtimeMs: st.mtimeMs };
  };
  const record: GuestFilesRecord = {
    driver: files.driver,
    kernel: recorded(files.kernel),
    agentImage: recorded(files.agentImage),
    ...(files.image ? { image: recorded(files.image) } : {}),
  };
  fs.writeFileSync(path.join(stateDir, GUEST_FILES), JSON.stringify(record) + '\n', { mode: 0o600 });
}

/** A section of the pack to write: a file, or a byte range of one. */
export interface SnapshotPackSection {
  name: SectionName;
  path: string;
  range?: { offset: number; size: number };
}

export interface SnapshotPackParts {
  meta: SnapshotMeta;
  snapshot: PackSnapshot;
  sections: SnapshotPackSection[];
}

/**
 * What `pack create --from-snapshot ID` packs: the running snapshot's kernel, agent and root
 * image (the same files, unchanged since), its disks, RAM and device state. Refuses a stopped
 * machine's snapshot (nothing to resume), one with host folders (a pack cannot carry them) and
 * one whose guest files have changed or are gone.
 */
export function snapshotPackParts(machines: Machines, id: string): SnapshotPackParts {
  const store = machines.snapshots;
  const meta = store.verify(id);
  const dir = store.dir(id);
  if (!meta.running)
    throw new UsageError(`snapshot "${id}" is of a stopped machine: it has no running state to pack`, {
      remedy: `create a machine from it (\`smolvm machine create NEW --from-snapshot ${id}\`) and pack that with --from-vm`,
    });
  if (meta.source.volumes.length > 0)
    throw new UsageError(`snapshot "${id}" is of a machine with host folders (-v), which a pack cannot carry`, {
      remedy: 'snapshot a machine created without -v',
    });
  const vmDir = path.join(dir, SNAPSHOT_VM_DIR);
  const guestFile = path.join(vmDir, GUEST_FILES);
  if (!meta.files[`${SNAPSHOT_VM_DIR}/${GUEST_FILES}`] || !fs.existsSync(guestFile))
    throw new UsageError(`snapshot "${id}" does not record the kernel and agent it ran (taken by an older smolvm)`, {
      remedy: 'start a machine from it, snapshot that, and pack the new snapshot',
    });
  const guest = JSON.parse(fs.readFileSync(guestFile, 'utf8')) as GuestFilesRecord;
  const qemu = JSON.parse(fs.readFileSync(path.join(vmDir, 'qemu.json'), 'utf8')) as QemuInfo;
  if (qemu.memoryMiB !== meta.source.memoryMiB)
    throw new SmolvmError(
      `snapshot "${id}" is damaged: its RAM is ${qemu.memoryMiB} MiB, its machine's ${meta.source.memoryMiB}`,
      {
        remedy: `remove it with \`smolvm machine snapshot rm ${id}\` and take a new one`,
      },
    );
  const unchanged = (what: string, f: RecordedFile): SnapshotPackSection['path'] => {
    const st = fs.statSync(f.path, { throwIfNoEntry: false });
    if (!st || st.size !== f.size || st.dev !== f.dev || st.ino !== f.ino || st.mtimeMs !== f.mtimeMs)
      throw new ConflictError(
        `snapshot "${id}" cannot be packed: the ${what} its guest runs from (${f.path}) has changed or is gone`,
        { remedy: 'start a machine from the snapshot, snapshot that machine, and pack the new snapshot' },
      );
    return f.path;
  };
  const guestSection = (name: SectionName, what: string, f: RecordedFile): SnapshotPackSection => ({
    name,
    path: unchanged(what, f),
    ...(f.range ? { range: f.range } : {}),
  });
  return {
    meta,
    snapshot: {
      id,
      driver: guest.driver,
      qemu: qemu.qemu,
      qemu_package: qemu.package,
      nic: meta.nic,
    },
    sections: [
      guestSection('kernel', 'kernel', guest.kernel),
      guestSection('agent', 'agent image', guest.agentImage),
      ...(guest.image ? [guestSection('rootfs', 'root image', guest.image)] : []),
      { name: 'overlay', path: path.join(dir, SNAPSHOT_DISKS.overlay) },
      { name: 'storage', path: path.join(dir, SNAPSHOT_DISKS.storage) },
      { name: 'memory', path: path.join(vmDir, 'memory') },
      { name: 'state', path: path.join(vmDir, 'state') },
    ],
  };
}

/** A section's bytes as a stream. */
export function openPackSection(s: SnapshotPackSection): Readable {
  return fs.createReadStream(s.path, s.range ? { start: s.range.offset, end: s.range.offset + s.range.size - 1 } : {});
}

/** The snapshot id a packed snapshot is imported as: named by the pack's digest, so a second import finds it. */
export function importedSnapshotId(pack: PackFile): string {
  const snapshot = requireSnapshot(pack);
  const tag = snapshot.id.slice(snapshot.id.lastIndexOf(':') + 1);
  return `pack-${pack.digest.slice('sha256:'.length, 'sha256:'.length + 12)}:${tag}`;
}

function requireSnapshot(pack: PackFile): PackSnapshot {
  if (!pack.manifest.snapshot)
    throw new UsageError(`${pack.path} holds no running machine to import as a snapshot`, {
      remedy: 'create a machine from it with `smolvm machine create NAME --from PACK`',
    });
  return pack.manifest.snapshot;
}

export interface ImportOptions {
  /** For tests: called after each section is written (a throw there is a crash mid-import). */
  afterSection?: (name: SectionName) => void;
}

/**
 * Imports a packed snapshot into the snapshot store (once per pack digest: a second import of the
 * same pack returns the same snapshot) and returns its id. Every section is checked against the
 * pack's sha256 as it is read; the snapshot appears only complete (staging + rename), owner-only.
 */
export async function importPackedSnapshot(
  machines: Machines,
  pack: PackFile,
  cacheDir: string,
  options: ImportOptions = {},
): Promise<string> {
  const snapshot = requireSnapshot(pack);
  const id = importedSnapshotId(pack);
  const store = machines.snapshots;
  const machine = id.slice(0, id.lastIndexOf(':'));
  return machines.store.withMachineLock(
    machine,
    async () => {
      // The kernel, agent and root image go to the section cache, where machines boot them from.
      const hashed = await importBootSections(pack, cacheDir);
      if (fs.existsSync(store.dir(id))) {
        const meta = store.verify(id);
        if (meta.pack?.digest !== pack.digest)
          throw new ConflictError(`snapshot "${id}" exists and was not imported from ${pack.path}`, {
            remedy: `remove it with \`smolvm machine snapshot rm ${id}\`, then try again`,
          });
        // Boot sections the cache already had were not read from this pack: checked here.
        await verifyUnread(pack, cacheDir, ['memory', 'state', 'overlay', 'storage', ...hashed]);
        return id;
      }
      const staging = store.beginStaging(id.replace(':', '.'));
      try {
        fs.mkdirSync(path.join(staging, SNAPSHOT_VM_DIR), { mode: 0o700 });
        const targets: Array<[SectionName, string]> = [
          ['overlay', SNAPSHOT_DISKS.overlay],
          ['storage', SNAPSHOT_DISKS.storage],
          ['memory', `${SNAPSHOT_VM_DIR}/memory`],
          ['state', `${SNAPSHOT_VM_DIR}/state`],
        ];
        for (const [name, rel] of targets) {
          await writeSectionSparse(pack, name, path.join(staging, rel));
          options.afterSection?.(name);
        }
        await verifyUnread(pack, cacheDir, [...targets.map(([n]) => n), ...hashed]);
        const m = pack.manifest;
        fs.writeFileSync(
          path.join(staging, SNAPSHOT_VM_DIR, 'qemu.json'),
          JSON.stringify({ qemu: snapshot.qemu, package: snapshot.qemu_package, memoryMiB: m.memory_mib }) + '\n',
          { mode: 0o600 },
        );
        writeJsonAtomic(path.join(staging, SNAPSHOT_PACK), { digest: pack.digest, manifest: m });
        const meta = store.commit(staging, {
          id,
          machine,
          tag: id.slice(id.lastIndexOf(':') + 1),
          createdAt: new Date().toISOString(),
          running: true,
          source: sourceRecord(machine, pack),
          nic: snapshot.nic,
          pack: { digest: pack.digest },
        });
        return meta.id;
      } catch (err) {
        fs.rmSync(staging, { recursive: true, force: true });
        throw err;
      }
    },
    { purpose: 'import packed snapshot', timeoutMs: LOCK_TIMEOUT_MS },
  );
}

/** Checks the sections of `pack` not in `read` (already hashed from this file), if any. */
async function verifyUnread(pack: PackFile, cacheDir: string, read: SectionName[]): Promise<void> {
  if (pack.sections().some((s) => !read.includes(s.name))) await pack.verify(cacheDir, { hashed: read });
}

/** The record machines made from the imported snapshot inherit: the pack's workload and shape. */
function sourceRecord(name: string, pack: PackFile): MachineRecord {
  const m: PackManifest = pack.manifest;
  return {
    schemaVersion: SCHEMA_VERSION,
    id: crypto.randomUUID(),
    name,
    createdAt: m.created,
    ...(m.image ? { image: m.image.reference, imageDigest: m.image.digest } : {}),
    from: pack.path,
    cpus: m.cpus,
    memoryMiB: m.memory_mib,
    storageGiB: m.storage_gib,
    overlayGiB: m.overlay_gib,
    net: m.network.net,
    allowHosts: m.network.allow_hosts,
    allowCidrs: m.network.allow_cidrs,
    volumes: [],
    ports: [],
    env: m.env,
    ...(m.workdir !== null ? { workdir: m.workdir } : {}),
    ...(m.user !== null ? { user: m.user } : {}),
    init: [],
    sshAgent: false,
  };
}

/** Copies a section to a new owner-only `file`, leaving all-zero blocks as holes, hashed on the way. */
async function writeSectionSparse(pack: PackFile, name: SectionName, file: string): Promise<void> {
  const fh = await fs.promises.open(file, 'wx', 0o600);
  try {
    await writeSection(pack, name, fh, { sparse: true });
  } finally {
    await fh.close();
  }
}
