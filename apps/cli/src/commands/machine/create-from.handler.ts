// `smolvm machine create NAME --from FILE.smolmachine|REFERENCE`: a persistent machine that boots the pack's
// kernel, agent and image (imported into the cache, verified), with the pack's settings; flags
// given on the command line win, and a pack made with --from-vm brings its disks.
import { UsageError } from '@smolvm/common';
import type { MergedRunOptions } from '@smolvm/config';
import type { MachineRecord } from '@smolvm/machine-store';
import type { Machines } from '@smolvm/machines';
import { keepStartInvocation } from '@smolvm/machines/early-start';
import { PackFile } from '@smolvm/pack/local';
import { packPathFrom } from '../pack/source';
import { stubRuntimeCandidates } from '../../stub';
import type { CreateArgs } from './create';

export async function createFromPack(
  machines: Machines,
  args: CreateArgs,
  merged: MergedRunOptions,
): Promise<MachineRecord> {
  if (args.image !== undefined || args.smolfile !== undefined) {
    throw new UsageError('--from takes the workload from the pack, and --image/--smolfile describe another one', {
      remedy: 'drop --image and --smolfile, or --from',
    });
  }
  // A reference is pulled into the pack cache first (once per digest); a path is used as it is.
  const pack = PackFile.open(await packPathFrom(args.from as string, args.quiet));
  if (pack.manifest.snapshot)
    return (await import('./snapshot.handler')).createFromPackedSnapshot(machines, args, pack);
  const m = pack.manifest;
  const env = [...m.env];
  for (const v of merged.env) {
    const i = env.findIndex((e) => e.startsWith(`${v.name}=`));
    if (i >= 0) env.splice(i, 1);
    env.push(`${v.name}=${v.value}`);
  }
  const record = await machines.createFromPack(
    {
      name: args.name,
      ...(m.image ? { image: m.image.reference, imageDigest: m.image.digest } : {}),
      cpus: args.cpus !== undefined ? merged.cpus : m.cpus,
      memoryMiB: args.memory !== undefined ? merged.memoryMib : m.memory_mib,
      storageGiB: args.storage !== undefined ? merged.storageGib : m.storage_gib,
      overlayGiB: args.overlay !== undefined ? merged.overlayGib : m.overlay_gib,
      volumes: merged.volumes,
      env,
      ...((merged.workdir ?? m.workdir) ? { workdir: merged.workdir ?? (m.workdir as string) } : {}),
      ...(m.user ? { user: m.user } : {}),
      init: merged.init,
      net: merged.network.enabled || m.network.net,
      allowHosts: merged.network.enabled ? merged.network.allowHosts : m.network.allow_hosts,
      allowCidrs: merged.network.enabled ? merged.network.allowCidrs.map((c) => c.cidr) : m.network.allow_cidrs,
      ports: merged.ports,
      sshAgent: merged.sshAgent,
    },
    pack,
    { runtimeCandidates: stubRuntimeCandidates() },
  );
  // Its first start boots the pack's sections (no image erofs): the loader can spawn that early.
  keepStartInvocation(machines.store.machineDir(record.name), record, undefined);
  return record;
}
