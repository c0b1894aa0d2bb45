// The machine a workload's flags + Smolfile (+ the image's config) describe: what `machine create`
// records and `machine run -d` starts.
import path from 'node:path';
import { ConflictError } from '@smolvm/common';
import { applyImageConfig, formatReference, loadSmolfile, mergeRunOptions, type MergedRunOptions } from '@smolvm/config';
import type { NewMachine } from '@smolvm/machine-store';
import type { Machines } from '@smolvm/machines';
import { pullWithProgress } from '../image/pull-progress';
import { prepareBaseImage } from './base-image';
import { networkFlags, type WorkloadArgs } from './workload-options';

export type MachineWorkloadArgs = WorkloadArgs & { storage?: string; overlay?: string };

/** Flags merged with the Smolfile; validates both before anything slow happens. */
export function mergeWorkload(args: MachineWorkloadArgs): MergedRunOptions {
  const smolfile = args.smolfile ? loadSmolfile(args.smolfile) : undefined;
  return mergeRunOptions(
    { image: args.image, env: args.env, volumes: args.volume, init: args.init, cpus: args.cpus, memory: args.memory, storage: args.storage, overlay: args.overlay, workdir: args.workdir, ...networkFlags(args) },
    smolfile,
  );
}

/** Pulls the image if missing (pinned by digest in the record) and fills in the machine's settings. */
export async function machineInput(merged: MergedRunOptions, args: MachineWorkloadArgs): Promise<{ input: Omit<NewMachine, 'name'>; imageErofs?: string }> {
  // A bare machine is based on the base image bare VMs run on, pinned like any image.
  const prepared = merged.image ? await pullWithProgress(merged.image, { quiet: args.quiet, pull: 'missing' }) : await prepareBaseImage(args.quiet);
  const config = applyImageConfig(merged, prepared.config);
  const input: Omit<NewMachine, 'name'> = {
    image: merged.image ? formatReference(merged.image) : prepared.reference,
    imageDigest: prepared.manifestDigest,
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
  };
  return { input, imageErofs: prepared.erofsPath };
}

/** Checked before a possibly long pull; creating the record checks again under the lock. */
export function assertNameFree(machines: Machines, name: string): void {
  if (machines.store.exists(name)) {
    throw new ConflictError(`machine "${name}" already exists`, { remedy: `choose another name, or delete it first with \`smolvm machine delete ${name}\`` });
  }
}
