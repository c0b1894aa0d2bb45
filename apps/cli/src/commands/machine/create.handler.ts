// `smolvm machine create NAME`: merge flags + Smolfile (+ the image's config), pull the image,
// then make the record and both sparse disks in one step.
import { validateMachineName } from '@smolvm/machine-store';
import { Machines } from '@smolvm/machines';
import { keepStartInvocation } from '@smolvm/machines/early-start';
import type { CreateArgs } from './create';
import { assertNameFree, machineInput, mergeWorkload } from './machine-input';

export async function runCreate(args: CreateArgs): Promise<void> {
  validateMachineName(args.name);
  const machines = new Machines();
  if (args.fromSnapshot !== undefined) {
    assertNameFree(machines, args.name);
    const record = await (
      await import('./snapshot.handler')
    ).createFromSnapshot(machines, { ...args, fromSnapshot: args.fromSnapshot });
    process.stdout.write(`${record.name}\n`);
    if (!args.quiet)
      process.stderr.write(
        `created machine "${record.name}" from snapshot ${args.fromSnapshot}; start it with \`smolvm machine start --name ${record.name}\`\n`,
      );
    return;
  }
  const merged = mergeWorkload(args);
  assertNameFree(machines, args.name);
  let record;
  if (args.from !== undefined) {
    record = await (await import('./create-from.handler')).createFromPack(machines, args, merged);
  } else {
    const { input, imageErofs } = await machineInput(merged, args);
    record = await machines.create({ name: args.name, ...input });
    // The first start's loader can then spawn the supervisor early, as for every later start.
    keepStartInvocation(machines.store.machineDir(record.name), record, imageErofs);
  }
  process.stdout.write(`${record.name}\n`);
  if (!args.quiet) {
    process.stderr.write(
      `created machine "${record.name}" (${record.image ?? 'bare'}, ${record.cpus} vCPUs, ${record.memoryMiB} MiB, storage ${record.storageGiB} GiB, overlay ${record.overlayGiB} GiB); start it with \`smolvm machine start --name ${record.name}\`\n`,
    );
  }
}
