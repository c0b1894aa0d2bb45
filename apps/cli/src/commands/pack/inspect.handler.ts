// `smolvm pack inspect PATH`: the manifest and section table, after the sections were verified,
// and where the runtime (format version 4) is read from, as a run would find it.
import { NotFoundError, smolvmDirs } from '@smolvm/common';
import { PackFile, runtimeDisk, type RuntimeDisk } from '@smolvm/pack/local';
import { renderTable, writeJson } from '../../output/table';
import { stubRuntimeCandidates } from '../../stub';
import type { PackInspectArgs } from './inspect';

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Where the runtime is read from, or why it cannot be (the pack is shown either way). */
async function runtimeSource(pack: PackFile, cacheDir: string): Promise<{ disk?: RuntimeDisk; missing?: string }> {
  try {
    return { disk: await runtimeDisk(pack, cacheDir, stubRuntimeCandidates()) };
  } catch (err) {
    if (err instanceof NotFoundError) return { missing: `${err.message}; ${err.remedy ?? ''}`.replace(/; $/, '') };
    throw err;
  }
}

export async function runPackInspect(args: PackInspectArgs): Promise<void> {
  const pack = PackFile.open(args.path);
  const cacheDir = smolvmDirs().cache;
  await pack.verify(cacheDir);
  const m = pack.manifest;
  const runtime = m.runtime ? await runtimeSource(pack, cacheDir) : undefined;
  if (args.json) {
    writeJson({
      path: pack.path,
      digest: pack.digest,
      payload_offset: pack.payloadStart,
      ...m,
      ...(runtime
        ? {
            runtime_source: runtime.disk ? { path: runtime.disk.path, ...runtime.disk.range } : null,
            ...(runtime.missing ? { runtime_error: runtime.missing } : {}),
          }
        : {}),
    });
    return;
  }
  const lines = [
    `pack:          ${pack.path} (${pack.digest})`,
    `platform:      ${m.platform} (host ${m.host_platform})`,
    `created:       ${m.created} by smolvm ${m.smolvm_version}`,
    `image:         ${m.image ? `${m.image.reference} (${m.image.digest})` : '(bare)'}${m.from_vm ? `, from machine ${m.from_vm}` : ''}`,
    `command:       ${JSON.stringify([...m.entrypoint, ...m.cmd])}${m.entrypoint.length ? ` (entrypoint ${JSON.stringify(m.entrypoint)})` : ''}`,
    `workdir/user:  ${m.workdir ?? '/'} / ${m.user ?? 'root'}`,
    `env:           ${m.env.length ? m.env.join(' ') : '(none)'}`,
    `resources:     ${m.cpus} vCPUs, ${m.memory_mib} MiB; machines get storage ${m.storage_gib} GiB, overlay ${m.overlay_gib} GiB`,
    `network:       ${m.network.net ? ['on', ...m.network.allow_hosts, ...m.network.allow_cidrs].join(' ') : 'off'}`,
    `artifact:      ${m.artifact ? JSON.stringify(m.artifact) : '(none)'}`,
    // A packed snapshot carries the guest's RAM: whatever was in memory (keys, tokens) ships with it.
    ...(m.snapshot
      ? [
          `snapshot:      running machine ${m.snapshot.id}: its RAM (${m.memory_mib} MiB, with whatever secrets were in memory) and device state; QEMU ${m.snapshot.qemu.major}.${m.snapshot.qemu.minor}.${m.snapshot.qemu.micro} (${m.snapshot.qemu_package}), driver ${m.snapshot.driver}`,
        ]
      : []),
    ...(m.runtime && runtime
      ? [
          `runtime:       ${mib(m.runtime.size)} of the packed executable (its Node, which the guest's agent runs on), sha256 ${m.runtime.sha256.slice(0, 16)}`,
          runtime.disk
            ? `               read from ${runtime.disk.path}${runtime.disk.range ? ` (its first ${runtime.disk.range.size} bytes, in place)` : ' (a copy in the cache)'}`
            : `               not found: ${runtime.missing}`,
        ]
      : []),
    '',
  ];
  process.stdout.write(lines.join('\n') + '\n');
  process.stdout.write(
    renderTable(
      ['SECTION', 'MEDIA TYPE', 'OFFSET', 'SIZE', 'SHA256'],
      pack
        .sections()
        .map((s) => [
          s.name,
          s.media_type,
          String(s.fileOffset),
          s.uncompressed_size === undefined ? mib(s.size) : `${mib(s.size)} (${mib(s.uncompressed_size)} raw)`,
          s.sha256.slice(0, 16),
        ]),
    ),
  );
}
