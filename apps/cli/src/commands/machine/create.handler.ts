// `smolvm machine create NAME`: merge flags + Smolfile (+ the image's config), pull the image,
// then make the record and both sparse disks in one step.
import { ConflictError } from '@smolvm/common';
import { applyImageConfig, loadSmolfile, mergeRunOptions, formatReference } from '@smolvm/config';
import { validateMachineName } from '@smolvm/machine-store';
import { Machines } from '@smolvm/machines';
import path from 'node:path';
import { pullWithProgress } from '../image/pull-progress';
import type { CreateArgs } from './create';
import { networkFlags } from './workload-options';

export async function runCreate(args: CreateArgs): Promise<void> {
  validateMachineName(args.name);
  const smolfile = args.smolfile ? loadSmolfile(args.smolfile) : undefined;
  const merged = mergeRunOptions(
    { image: args.image, env: args.env, volumes: args.volume, init: args.init, cpus: args.cpus, memory: args.memory, storage: args.storage, overlay: args.overlay, workdir: args.workdir, ...networkFlags(args) },
    smolfile,
  );
  const machines = new Machines();
  // Checked before a possibly long pull; create() checks again under the lock.
  if (machines.store.exists(args.name)) {
    throw new ConflictError(`machine "${args.name}" already exists`, { remedy: `choose another name, or delete it first with \`smolvm machine delete ${args.name}\`` });
  }
  const prepared = merged.image ? await pullWithProgress(merged.image, { quiet: args.quiet, pull: 'missing' }) : undefined;
  const config = applyImageConfig(merged, prepared?.config ?? {});
  const record = await machines.create({
    name: args.name,
    ...(merged.image ? { image: formatReference(merged.image), imageDigest: prepared?.manifestDigest } : {}),
    cpus: config.cpus,
    memoryMiB: config.memoryMib,
    storageGiB: config.storageGib,
    overlayGiB: config.overlayGib,
    volumes: config.volumes.map((v) => ({ host: v.hostPath, guest: v.guestPath, readOnly: v.readOnly })),
    env: config.env.map((v) => `${v.name}=${v.value}`),
    ...(config.workdir ? { workdir: config.workdir } : {}),
    ...(config.user ? { user: config.user } : {}),
    init: config.init,
    net: merged.network.enabled,
    allowHosts: merged.network.allowHosts,
    allowCidrs: merged.network.allowCidrs.map((c) => c.cidr),
    ports: merged.ports.map((p) => ({ host: p.hostPort, guest: p.guestPort })),
    sshAgent: merged.sshAgent,
    ...(config.health ? { health: config.health } : {}),
    ...(args.smolfile ? { smolfile: path.resolve(args.smolfile) } : {}),
  });
  process.stdout.write(`${record.name}\n`);
  if (!args.quiet) {
    process.stderr.write(`created machine "${record.name}" (${record.image ?? 'bare'}, ${record.cpus} vCPUs, ${record.memoryMiB} MiB, storage ${record.storageGiB} GiB, overlay ${record.overlayGiB} GiB); start it with \`smolvm machine start --name ${record.name}\`\n`);
  }
}
