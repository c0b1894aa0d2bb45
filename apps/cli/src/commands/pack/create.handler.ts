// `smolvm pack create`: the workload (flags, Smolfile top level + [artifact], image config, or a
// stopped machine) and its kernel, agent image, root image and disks, assembled into a
// .smolmachine with the stub executable beside it (or in front of it, --single-file).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConflictError, UsageError, smolvmDirs, writeFileAtomic } from '@smolvm/common';
import {
  applyImageConfig,
  formatPlatform,
  formatReference,
  loadSmolfile,
  mergeEnv,
  mergeNetwork,
  parseCpus,
  parseEnvEntry,
  parseEnvFlag,
  parseMemory,
  resolveArtifactProfile,
  type ImageRunSettings,
  type WorkloadOptions,
} from '@smolvm/config';
import { ensureAgentImage } from '@smolvm/agent-image';
import type { MachineRecord } from '@smolvm/machine-store';
import { openPackSection, shrunkCopy, snapshotPackParts, type SnapshotPackParts } from '@smolvm/machines';
import { formatPlatform as formatOciPlatform, hostPlatform, type PreparedImage } from '@smolvm/oci';
import { assemblePack, runtimeOf, type PackManifestBase, type SectionSource } from '@smolvm/pack';
import { locateKernel, packedAgentImageWithBlob } from '@smolvm/runtime';
import { agentBundlePath, guestAssets } from '../../runtime-assets';
import { locateStubExecutable, stubPrefix, type StubExecutable } from '../../stub';
import { smolvmVersion } from '../../version';
import { pullWithProgress } from '../image/pull-progress';
import { cliMachines, machineImage } from '../machine/machines';
import type { PackCreateArgs } from './create';

type PackRuntime = Awaited<ReturnType<typeof runtimeOf>>;

function fileSection(name: SectionSource['name'], file: string): SectionSource {
  return { name, open: () => fs.createReadStream(file) };
}

/**
 * The kernel and agent image of this smolvm (the single-file one packs those it carries, like the
 * VMs it runs). With a native stub on a Linux host of the guest's platform, the guest runs on the
 * stub's own Node (the pack's `runtime`): the agent image then holds no Node of its own.
 */
async function guestSections(
  stub: StubExecutable,
  platform: string,
): Promise<{ sections: SectionSource[]; runtime?: PackRuntime }> {
  const { kernel: shippedKernel, ...agentInputs } = guestAssets() ?? {};
  const kernel = locateKernel(process.env, shippedKernel);
  const shared =
    stub.kind === 'native' && process.platform === 'linux' && platform === formatOciPlatform(hostPlatform());
  const runtime = shared ? await runtimeOf(stub.path) : undefined;
  const imageOptions = {
    cacheDir: smolvmDirs().cache,
    agentBundle: agentBundlePath(),
    ...agentInputs,
    ...(runtime ? { runtime: { executable: stub.path, ...runtime } } : {}),
  };
  const plain = await ensureAgentImage(imageOptions);
  // The agent's startup blob, built in a VM on this host (once per image and guest CPU): only for
  // a guest of this host's platform, which is what `shared` says.
  const agent = shared
    ? await packedAgentImageWithBlob(plain, imageOptions, {
        kernel,
        ...(runtime
          ? { runtime: { path: stub.path, range: { offset: 0, size: runtime.size }, sha256: runtime.sha256 } }
          : {}),
      })
    : plain;
  // The kernel is extracted to a file before use anyway, so it travels compressed (a fifth of its size).
  return {
    sections: [{ ...fileSection('kernel', kernel), compress: 'gzip' }, fileSection('agent', agent.path)],
    ...(runtime ? { runtime } : {}),
  };
}

export async function runPackCreate(args: PackCreateArgs): Promise<void> {
  if (args.fromVm !== undefined && (args.image !== undefined || args.smolfile !== undefined)) {
    throw new UsageError('--from-vm packs a machine as it is, and --image/--smolfile describe another workload', {
      remedy: 'drop --image and --smolfile, or --from-vm',
    });
  }
  if (args.fromSnapshot !== undefined) {
    const other = (['fromVm', 'image', 'smolfile', 'cpus', 'memory', 'platform'] as const).filter(
      (k) => args[k] !== undefined,
    );
    if (other.length > 0)
      throw new UsageError(
        `--from-snapshot packs a running machine as it is; --${other.map((k) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)).join(', --')} cannot change it`,
        { remedy: `drop --${other[0]?.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` },
      );
  }
  const output = path.resolve(args.output);
  if (output.endsWith('.smolmachine'))
    throw new UsageError(`-o names the executable, and ${args.output} ends in .smolmachine`, {
      remedy: `give the executable's path (e.g. -o ${args.output.replace(/\.smolmachine$/, '')}); the payload goes beside it`,
    });
  if (fs.statSync(output, { throwIfNoEntry: false })?.isDirectory())
    throw new UsageError(`-o ${args.output} is a directory`, {
      remedy: 'give the path of the executable to write, e.g. -o ./my-app',
    });
  if (!fs.statSync(path.dirname(output), { throwIfNoEntry: false })?.isDirectory())
    throw new UsageError(`the directory of -o ${args.output} does not exist`, {
      remedy: `create ${path.dirname(output)} first`,
    });
  const smolfile = args.smolfile ? loadSmolfile(args.smolfile) : undefined;
  const profile = resolveArtifactProfile(
    { image: args.image, cpus: args.cpus, memory: args.memory, platform: args.platform },
    smolfile,
  );
  const flagEnv = (args.env ?? []).map((e) => parseEnvFlag(e));
  const flagNetwork = {
    net: args.net,
    allowHosts: args.allowHost,
    allowCidrs: args.allowCidr,
    outboundLocalhostOnly: args.outboundLocalhostOnly,
  };

  let record: MachineRecord | undefined;
  let prepared: PreparedImage | undefined;
  let snapshot: SnapshotPackParts | undefined;
  if (args.fromSnapshot !== undefined) {
    snapshot = snapshotPackParts(cliMachines(), args.fromSnapshot);
    record = snapshot.meta.source;
    if (record.from)
      throw new UsageError(
        `snapshot "${args.fromSnapshot}" is of a machine made from a pack, and packing it again is not supported`,
        {
          remedy: 'snapshot a machine made with --image (or the bare image)',
        },
      );
    // For the image's command and settings; the root image packed is the very one the guest runs.
    prepared = await machineImage(record, args.quiet);
  } else if (args.fromVm !== undefined) {
    const status = await cliMachines().status(args.fromVm);
    record = status.record;
    if (status.state === 'running' || status.state === 'unreachable')
      throw new ConflictError(`machine "${record.name}" is running`, {
        remedy: `stop it first: smolvm machine stop --name ${record.name}`,
      });
    if (record.ephemeral)
      throw new UsageError(`machine "${record.name}" is an ephemeral machine of machine run -d`, {
        remedy: 'pack a persistent machine (machine create)',
      });
    if (record.from)
      throw new UsageError(`machine "${record.name}" was made from a pack, and packing it again is not supported`, {
        remedy: `pack its source again, or pack a machine made with --image`,
      });
    prepared = await machineImage(record, args.quiet);
  } else if (profile.image) {
    prepared = await pullWithProgress(formatReference(profile.image), {
      quiet: args.quiet,
      pull: 'missing',
      ...(profile.platform ? { platform: formatPlatform(profile.platform) } : {}),
    });
  }

  const imageConfig: ImageRunSettings = prepared?.config ?? {};
  let workload: Pick<
    PackManifestBase,
    | 'entrypoint'
    | 'cmd'
    | 'env'
    | 'workdir'
    | 'user'
    | 'cpus'
    | 'memory_mib'
    | 'storage_gib'
    | 'overlay_gib'
    | 'network'
  >;
  if (record) {
    // The record holds the merged env/workdir/resources; the image config supplies the command.
    const base: WorkloadOptions = {
      env: mergeEnv(
        record.env.map((e) => parseEnvEntry(e)),
        flagEnv,
      ),
      cpus: record.cpus,
      memoryMib: record.memoryMiB,
      storageGib: record.storageGiB,
      overlayGib: record.overlayGiB,
      network: { enabled: false, allowHosts: [], allowCidrs: [] },
      sshAgent: false,
    };
    const config = applyImageConfig(base, imageConfig);
    const network = mergeNetwork(flagNetwork);
    workload = {
      entrypoint: config.entrypoint,
      cmd: config.cmd,
      env: config.env.map((v) => `${v.name}=${v.value}`),
      workdir: args.workdir ?? record.workdir ?? config.workdir ?? null,
      user: record.user ?? config.user ?? null,
      cpus: args.cpus !== undefined ? parseCpus(args.cpus) : record.cpus,
      memory_mib: args.memory !== undefined ? parseMemory(args.memory) : record.memoryMiB,
      storage_gib: record.storageGiB,
      overlay_gib: record.overlayGiB,
      network: network.enabled
        ? { net: true, allow_hosts: network.allowHosts, allow_cidrs: network.allowCidrs.map((c) => c.cidr) }
        : { net: record.net, allow_hosts: record.allowHosts, allow_cidrs: record.allowCidrs },
    };
  } else {
    const config = applyImageConfig(
      { ...profile, env: mergeEnv(profile.env, flagEnv), ...(args.workdir ? { workdir: args.workdir } : {}) },
      imageConfig,
    );
    const network = mergeNetwork(flagNetwork, smolfile);
    workload = {
      entrypoint: config.entrypoint,
      cmd: config.cmd,
      env: config.env.map((v) => `${v.name}=${v.value}`),
      workdir: config.workdir ?? null,
      user: config.user ?? null,
      cpus: config.cpus,
      memory_mib: config.memoryMib,
      storage_gib: config.storageGib,
      overlay_gib: config.overlayGib,
      network: {
        net: network.enabled,
        allow_hosts: network.allowHosts,
        allow_cidrs: network.allowCidrs.map((c) => c.cidr),
      },
    };
  }
  const artifact = smolfile?.artifact;
  const manifest: PackManifestBase = {
    platform: profile.platform ? formatPlatform(profile.platform) : formatOciPlatform(hostPlatform()),
    host_platform: formatOciPlatform(hostPlatform()),
    created: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    smolvm_version: smolvmVersion(),
    image: prepared ? { reference: prepared.reference, digest: prepared.manifestDigest } : null,
    from_vm: snapshot ? null : (record?.name ?? null),
    ...workload,
    artifact:
      artifact && Object.keys(artifact).length > 0
        ? {
            ...(artifact.cpus !== undefined ? { cpus: artifact.cpus } : {}),
            ...(artifact.memoryMib !== undefined ? { memory_mib: artifact.memoryMib } : {}),
            ...(artifact.entrypoint !== undefined ? { entrypoint: artifact.entrypoint } : {}),
            ...(artifact.platform !== undefined ? { oci_platform: formatPlatform(artifact.platform) } : {}),
          }
        : null,
    ...(snapshot ? { snapshot: snapshot.snapshot } : {}),
  };

  const stub = locateStubExecutable();
  const scratch = record && !snapshot ? fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-pack-')) : undefined;
  try {
    // A snapshot carries the kernel and agent its guest runs (Node included); other packs those of this smolvm.
    const guest = snapshot ? undefined : await guestSections(stub, manifest.platform);
    const sections: SectionSource[] = snapshot
      ? snapshot.sections.map((s): SectionSource => ({
          name: s.name,
          open: () => openPackSection(s),
          ...(s.name === 'kernel' ? { compress: 'gzip' } : {}),
        }))
      : (guest?.sections ?? []);
    if (prepared && !snapshot) sections.push(fileSection('rootfs', prepared.erofsPath));
    if (record && scratch) {
      const files = cliMachines().files(record.name);
      for (const [name, disk] of [
        ['overlay', files.overlayDisk],
        ['storage', files.storageDisk],
      ] as const) {
        const copy = path.join(scratch, `${name}.ext4`);
        shrunkCopy(disk, copy, record.fromSnapshot ? 'qcow2' : 'raw');
        sections.push(fileSection(name, copy));
      }
    }
    const payload = args.singleFile === true ? output : `${output}.smolmachine`;
    const packed = await assemblePack({
      output: payload,
      manifest,
      sections,
      ...(guest?.runtime ? { runtime: guest.runtime } : {}),
      ...(args.singleFile ? { prefix: stubPrefix(stub, true) } : {}),
    });
    if (!args.singleFile) writeFileAtomic(output, stubPrefix(stub, false), 0o755);
    if (!args.quiet) {
      const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
      const parts = packed.manifest.sections.map((s) => `${s.name} ${mib(s.size)}`).join(', ');
      process.stderr.write(
        `packed ${packed.manifest.image?.reference ?? 'the bare image'}${snapshot ? ` (running machine, snapshot ${snapshot.snapshot.id})` : record ? ` (machine ${record.name})` : ''}: ${payload} (${mib(packed.size)}: ${parts})${snapshot ? `; resume it with smolvm machine create NAME --from ${payload}` : args.singleFile ? '' : `; run it with ${output} run`}\n`,
      );
    }
    process.stdout.write(`${output}\n`);
  } finally {
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  }
}
