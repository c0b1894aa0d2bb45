// Machines made from a .smolmachine (`machine create --from`, and the packed executable's daemon
// mode): they boot the pack's own kernel, agent, image and runtime (format version 4) from the
// section cache, and a pack made with --from-vm brings the overlay and /workspace disks it was made with.
import fs from 'node:fs';
import { writeJsonAtomic } from '@smolvm/common';
import {
  extractSection,
  importSections,
  importedBoot,
  parseManifest,
  type PackFile,
  type PackManifest,
  type PackedBoot,
} from '@smolvm/pack/local';
import { createDisks, growDisk, restoreJournal, type NewDisk } from './disks';
import { machineFiles } from './layout';

interface PackRecord {
  digest: string;
  manifest: PackManifest;
  /** The packed executable's daemon: every exec in a root of its own (absent: one persistent root). */
  execRoot?: 'fresh';
}

/**
 * Fills a new machine's directory from the pack: its record of the pack, and both disks. With
 * `freshExecRoot` (the packed executable's daemon mode), each exec's writes outside /workspace
 * are discarded when it ends. `runtimeCandidates`: more files that may hold the pack's runtime
 * (beyond the executable beside it), copied into the cache so the machine does not need them.
 */
export async function populateFromPack(
  dir: string,
  pack: PackFile,
  sizes: PackDiskSizes,
  cacheDir: string,
  freshExecRoot = false,
  runtimeCandidates?: string[],
): Promise<void> {
  const files = machineFiles(dir);
  await importSections(pack, cacheDir, runtimeCandidates);
  writeJsonAtomic(files.pack, {
    digest: pack.digest,
    manifest: pack.manifest,
    ...(freshExecRoot ? { execRoot: 'fresh' } : {}),
  } satisfies PackRecord);
  await writePackDisks(pack, files, sizes, cacheDir);
}

export interface PackDiskSizes {
  overlayGiB: number;
  storageGiB: number;
}

/**
 * The overlay and /workspace disks of a machine made from the pack: the packed ones (a pack made
 * with --from-vm; shrunk to their contents, so copied, verified, grown and given a journal
 * back), else new empty ones.
 */
export async function writePackDisks(
  pack: PackFile,
  disks: { overlayDisk: string; storageDisk: string },
  sizes: PackDiskSizes,
  cacheDir: string,
): Promise<void> {
  const empty: NewDisk[] = [];
  for (const [name, file, gib, label] of [
    ['overlay', disks.overlayDisk, sizes.overlayGiB, 'smolvm-overlay'],
    ['storage', disks.storageDisk, sizes.storageGiB, 'smolvm-storage'],
  ] as const) {
    if (pack.section(name)) {
      fs.copyFileSync(await extractSection(pack, name, cacheDir), file);
      fs.chmodSync(file, 0o600);
      growDisk(file, gib);
      restoreJournal(file);
    } else {
      empty.push({ file, sizeGiB: gib, label, shared: name === 'storage' });
    }
  }
  createDisks(empty, cacheDir);
}

/**
 * How to boot a machine made from a pack (its pack.json, written by populateFromPack). A section or
 * runtime the cache lost is imported again from `source` (the runtime from the executable beside
 * it, or `runtimeCandidates`).
 */
export async function machinePackBoot(
  packJson: string,
  cacheDir: string,
  source: string,
  runtimeCandidates?: string[],
): Promise<PackedBoot & { freshExecRoot?: boolean }> {
  const record = JSON.parse(fs.readFileSync(packJson, 'utf8')) as PackRecord;
  const manifest = parseManifest(Buffer.from(JSON.stringify(record.manifest)), packJson, Number.MAX_SAFE_INTEGER);
  return {
    ...(await importedBoot(manifest, record.digest, cacheDir, source, runtimeCandidates)),
    ...(record.execRoot === 'fresh' ? { freshExecRoot: true } : {}),
  };
}
