import { validateMachineName } from '@smolvm/machine-store';
import { writeJson } from '../../output/table';
import { formatBytes } from '../../output/progress';
import { cliMachines } from './machines';
import { machineDetails } from '@smolvm/machines';
import { stateLabel } from './summary';
import type { StatusArgs } from './status';

export async function runStatus(args: StatusArgs): Promise<void> {
  validateMachineName(args.name);
  // Read-only: pings a running machine through its supervisor, changes nothing.
  const status = await cliMachines().status(args.name);
  const details = machineDetails(status);
  const summary = details;
  if (args.json) {
    writeJson(details);
    return;
  }
  const lines: Array<[string, string]> = [
    ['name', summary.name],
    [
      'state',
      stateLabel(summary) + (status.pingMs !== undefined ? ` (agent answered in ${status.pingMs.toFixed(1)} ms)` : ''),
    ],
    ['image', summary.image ?? '(bare)'],
    ['cpus', String(summary.cpus)],
    ['memory', `${summary.memoryMiB} MiB`],
    ['storage', `${summary.storageGiB} GiB (${formatBytes(status.disks.storageBytes)} used on the host)`],
    ['overlay', `${summary.overlayGiB} GiB (${formatBytes(status.disks.overlayBytes)} used on the host)`],
    ['network', summary.net ? 'on' : 'off'],
    ['created', summary.createdAt],
  ];
  if (summary.ephemeral)
    lines.push([
      'kind',
      `ephemeral (machine run -d): \`smolvm machine stop --name ${summary.name}\` removes it with its disks`,
    ]);
  if (details.startedAt) lines.push(['started', details.startedAt]);
  if (status.lastExit && status.state !== 'running')
    lines.push(['last exit', `${status.lastExit.at} ${status.lastExit.cause}: ${status.lastExit.detail}`]);
  process.stdout.write(lines.map(([k, v]) => `${(k + ':').padEnd(10)} ${v}`).join('\n') + '\n');
}
