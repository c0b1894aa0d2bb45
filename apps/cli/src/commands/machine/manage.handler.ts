// `machine monitor|resize|prune|images`.
import fs from 'node:fs';
import { UsageError } from '@smolvm/common';
import { parseCpus, parseDiskSize, parseMemory } from '@smolvm/config';
import { validateMachineName } from '@smolvm/machine-store';
import { monitorMachine } from '@smolvm/machines';
import { ImageService } from '@smolvm/oci';
import { formatBytes } from '../../output/progress';
import { renderTable, writeJson } from '../../output/table';
import { cliMachines, machineImageErofs } from './machines';
import type { ImagesArgs } from './images';
import type { MonitorArgs } from './monitor';
import type { PruneArgs } from './prune';
import type { ResizeArgs } from './resize';

export async function runMonitor(args: MonitorArgs): Promise<void> {
  validateMachineName(args.name);
  const machines = cliMachines();
  machines.store.get(args.name);
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await monitorMachine(machines, args.name, {
      signal: abort.signal,
      log: (line) => process.stdout.write(`${new Date().toISOString()} ${line}\n`),
      start: async () => {
        const imageErofs = await machineImageErofs(machines.store.get(args.name), true);
        await machines.start(args.name, imageErofs ? { imageErofs } : {});
      },
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export async function runResize(args: ResizeArgs): Promise<void> {
  validateMachineName(args.name);
  const changes = {
    ...(args.cpus !== undefined ? { cpus: parseCpus(args.cpus) } : {}),
    ...(args.memory !== undefined ? { memoryMiB: parseMemory(args.memory) } : {}),
    ...(args.storage !== undefined ? { storageGiB: parseDiskSize(args.storage) } : {}),
    ...(args.overlay !== undefined ? { overlayGiB: parseDiskSize(args.overlay) } : {}),
  };
  if (Object.keys(changes).length === 0)
    throw new UsageError('machine resize needs something to change', {
      remedy: 'give --cpus, --memory, --storage or --overlay',
    });
  const record = await cliMachines().resize(args.name, changes);
  if (!args.quiet)
    process.stderr.write(
      `machine "${record.name}": ${record.cpus} vCPUs, ${record.memoryMiB} MiB, storage ${record.storageGiB} GiB, overlay ${record.overlayGiB} GiB (from its next start)\n`,
    );
}

export async function runPrune(args: PruneArgs): Promise<void> {
  validateMachineName(args.name);
  const reclaimed = await cliMachines().prune(args.name);
  if (args.json) writeJson({ name: args.name, reclaimedBytes: reclaimed });
  else
    process.stdout.write(
      `reclaimed ${formatBytes(reclaimed.overlayBytes + reclaimed.storageBytes)} (overlay ${formatBytes(reclaimed.overlayBytes)}, storage ${formatBytes(reclaimed.storageBytes)})\n`,
    );
}

export async function runImages(args: ImagesArgs): Promise<void> {
  if (args.name !== undefined) validateMachineName(args.name);
  const machines = cliMachines();
  const records = args.name !== undefined ? [machines.store.get(args.name)] : machines.store.list().machines;
  const service = new ImageService();
  try {
    const rows = records.map((r) => {
      const local = r.imageDigest ? service.find(r.imageDigest)[0] : undefined;
      const files = machines.files(r.name);
      const used = (f: string) => (fs.existsSync(f) ? fs.statSync(f).blocks * 512 : 0);
      return {
        name: r.name,
        image: r.image ?? null,
        digest: r.imageDigest ?? null,
        // An image removed from the store is pulled again (by digest) at the next start.
        inStore: r.image ? local !== undefined : null,
        // A machine made from a pack boots the pack's sections, not the store's image.
        from: r.from ?? null,
        overlayBytes: used(files.overlayDisk),
        storageBytes: used(files.storageDisk),
      };
    });
    if (args.json) {
      writeJson(rows);
      return;
    }
    process.stdout.write(
      renderTable(
        ['MACHINE', 'IMAGE', 'DIGEST', 'IN STORE', 'OVERLAY', 'STORAGE'],
        rows.map((r) => [
          r.name,
          r.image ?? '(bare)',
          r.digest ? r.digest.slice(0, 19) : '-',
          r.from ? 'pack' : r.inStore === null ? '-' : r.inStore ? 'yes' : 'no',
          formatBytes(r.overlayBytes),
          formatBytes(r.storageBytes),
        ]),
      ),
    );
  } finally {
    await service.close();
  }
}
