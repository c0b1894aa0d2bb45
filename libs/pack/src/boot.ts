// What a VM needs from a pack to boot: its kernel as a file, its agent image and root image as
// disks (in place when safe), and the executable bytes its agent runs on (format version 4), after
// the pack was verified. Shaped for @smolvm/runtime's startVm.
import fs from 'node:fs';
import path from 'node:path';
import { assertTrustedPath } from '@smolvm/common';
import { PackFormatError } from './format';
import type { PackManifest, SectionName } from './manifest';
import { PackFile } from './reader';
import { cachedRuntime, importRuntime, runtimeDisk, type RuntimeDisk } from './runtime';
import {
  cachedSectionName,
  copySection,
  extractSection,
  sectionCacheDir,
  sectionDisk,
  type SectionFile,
} from './sections';

export interface PackedBoot {
  packed: {
    kernel: string;
    agentImage: { path: string; range?: { offset: number; size: number }; key: string };
    /** Version 4: the read-only disk of executable bytes the agent image's `node` is read from. */
    runtime?: RuntimeDisk;
  };
  imageErofs?: string;
  imageRange?: { offset: number; size: number };
}

function asRange(f: SectionFile): { range?: { offset: number; size: number } } {
  return f.offset !== undefined && f.size !== undefined ? { range: { offset: f.offset, size: f.size } } : {};
}

function bootOf(
  manifest: PackManifest,
  kernel: string,
  agent: SectionFile,
  rootfs?: SectionFile,
  runtime?: RuntimeDisk,
): PackedBoot {
  const agentSection = manifest.sections.find((s) => s.name === 'agent');
  const rootRange = rootfs ? asRange(rootfs).range : undefined;
  return {
    packed: {
      kernel,
      agentImage: { path: agent.path, ...asRange(agent), key: agentSection?.sha256 ?? '' },
      ...(runtime ? { runtime } : {}),
    },
    ...(rootfs ? { imageErofs: rootfs.path, ...(rootRange ? { imageRange: rootRange } : {}) } : {}),
  };
}

/**
 * A pack of a running machine (format version 2) must resume, never boot: its disks are those of
 * a guest that has them mounted. Booting does not resume, so it refuses such a pack.
 */
function refuseSnapshot(pack: PackFile): void {
  if (pack.manifest.snapshot) {
    throw new PackFormatError(
      pack.path,
      `it holds the running state of snapshot ${pack.manifest.snapshot.id}, which is resumed, not booted`,
      'make a machine of it with `smolvm machine create NAME --from PACK` (the packed executable: `start`, then `exec`)',
    );
  }
}

/**
 * Verifies the pack (or finds it verified before) and returns how to boot it. `candidates`: more
 * files that may hold its runtime (runtimeDisk), e.g. the caller's own stub executable.
 */
export async function packedBoot(pack: PackFile, cacheDir: string, candidates?: string[]): Promise<PackedBoot> {
  refuseSnapshot(pack);
  await pack.verify(cacheDir);
  const kernel = await extractSection(pack, 'kernel', cacheDir);
  const agent = await sectionDisk(pack, 'agent', cacheDir);
  const rootfs = pack.section('rootfs') ? await sectionDisk(pack, 'rootfs', cacheDir) : undefined;
  return bootOf(pack.manifest, kernel, agent, rootfs, await runtimeDisk(pack, cacheDir, candidates));
}

/**
 * Copies the sections a machine boots from, and its runtime, into the section cache and verifies
 * the pack, in one read of each section: a copy is hashed on its way in, so verify skips what was
 * copied.
 */
export async function importSections(pack: PackFile, cacheDir: string, candidates?: string[]): Promise<void> {
  refuseSnapshot(pack);
  await pack.verify(cacheDir, { hashed: await importBootSections(pack, cacheDir, candidates) });
}

/**
 * Copies kernel, agent and rootfs into the section cache (each hashed on its way in; one already
 * there is named by its sha256), and the runtime (found as runtimeDisk finds it), and returns the
 * names of the sections it copied. It does not verify the rest of the pack: the caller does (a
 * packed snapshot's import hashes its other sections as it writes them).
 */
export async function importBootSections(
  pack: PackFile,
  cacheDir: string,
  candidates?: string[],
): Promise<SectionName[]> {
  const names = (['kernel', 'agent', 'rootfs'] as SectionName[]).filter((n) => pack.section(n));
  const copied: SectionName[] = [];
  for (const name of names) if ((await copySection(pack, name, cacheDir)).copied) copied.push(name);
  await importRuntime(pack, cacheDir, candidates);
  return copied;
}

/**
 * How to boot a machine made from a pack (`machine create --from`): from the sections and runtime
 * imported into the cache; ones the cache lost are imported again from `source` when it is still
 * the same pack (its manifest digest is `digest`), the runtime from the executable it came with
 * or `candidates`.
 */
export async function importedBoot(
  manifest: PackManifest,
  digest: string,
  cacheDir: string,
  source?: string,
  candidates?: string[],
): Promise<PackedBoot> {
  const cached = (name: SectionName): string | undefined => {
    const s = manifest.sections.find((x) => x.name === name);
    if (!s) return undefined;
    const file = path.join(sectionCacheDir(cacheDir), cachedSectionName(s));
    try {
      assertTrustedPath(file, cacheDir);
      if (fs.statSync(file).size === (s.uncompressed_size ?? s.size)) return file;
    } catch {
      // Gone or untrusted: imported again below.
    }
    return undefined;
  };
  const wanted = (['kernel', 'agent', 'rootfs'] as SectionName[]).filter((n) =>
    manifest.sections.some((s) => s.name === n),
  );
  const runtime = manifest.runtime;
  if (wanted.some((n) => cached(n) === undefined) || (runtime && !cachedRuntime(runtime, cacheDir))) {
    const pack = source && fs.existsSync(source) ? PackFile.open(source) : undefined;
    if (!pack || pack.digest !== digest) {
      throw new PackFormatError(
        source ?? '(no source)',
        `the machine's sections or runtime are gone from the cache and the file is not the pack it was made from (${digest})`,
        'create the machine again from its .smolmachine',
      );
    }
    // A packed snapshot's machine boots these too (after its first start, which resumes).
    await pack.verify(cacheDir, { hashed: await importBootSections(pack, cacheDir, candidates) });
  }
  const file = (n: SectionName) => cached(n) as string;
  const runtimeFile = runtime ? cachedRuntime(runtime, cacheDir) : undefined;
  if (runtime && !runtimeFile)
    throw new PackFormatError(
      source ?? '(no source)',
      `its runtime (sha256 ${runtime.sha256.slice(0, 12)}) went from the cache while it was imported`,
      'start the machine again',
    );
  return bootOf(
    manifest,
    file('kernel'),
    { path: file('agent') },
    wanted.includes('rootfs') ? { path: file('rootfs') } : undefined,
    runtime && runtimeFile ? { path: runtimeFile, sha256: runtime.sha256 } : undefined,
  );
}
