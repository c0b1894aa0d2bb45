// The machine a workload's flags + Smolfile (+ the image's config) describe: what `machine create`
// records and `machine run -d` starts.
import { ConflictError } from '@smolvm/common';
import { loadSmolfile, mergeRunOptions, type MergedRunOptions } from '@smolvm/config';
import { machineInput as workloadInput, type Machines } from '@smolvm/machines';
import { pullWithProgress } from '../image/pull-progress';
import { prepareBaseImage } from './base-image';
import { networkFlags, type WorkloadArgs } from './workload-options';

export type MachineWorkloadArgs = WorkloadArgs & { storage?: string; overlay?: string };

/** Flags merged with the Smolfile; validates both before anything slow happens. */
export function mergeWorkload(args: MachineWorkloadArgs): MergedRunOptions {
  const smolfile = args.smolfile ? loadSmolfile(args.smolfile) : undefined;
  return mergeRunOptions(
    {
      image: args.image,
      env: args.env,
      volumes: args.volume,
      init: args.init,
      cpus: args.cpus,
      memory: args.memory,
      storage: args.storage,
      overlay: args.overlay,
      workdir: args.workdir,
      ...networkFlags(args),
    },
    smolfile,
  );
}

/** Pulls the image if missing (pinned by digest in the record) and fills in the machine's settings. */
export function machineInput(merged: MergedRunOptions, args: MachineWorkloadArgs): ReturnType<typeof workloadInput> {
  return workloadInput(merged, {
    pull: (ref) => pullWithProgress(ref, { quiet: args.quiet, pull: 'missing' }),
    base: () => prepareBaseImage(args.quiet),
    ...(args.smolfile ? { smolfile: args.smolfile } : {}),
  });
}

/** Checked before a possibly long pull; creating the record checks again under the lock. */
export function assertNameFree(machines: Machines, name: string): void {
  if (machines.store.exists(name)) {
    throw new ConflictError(`machine "${name}" already exists`, {
      remedy: `choose another name, or delete it first with \`smolvm machine delete ${name}\``,
    });
  }
}
