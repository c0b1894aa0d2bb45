import { MachineStore, machineState, validateMachineName } from '@smolvm/machine-store';
import { writeJson } from '../../output/table';
import { machineSummary } from './summary';
import type { StatusArgs } from './status';

export function runStatus(args: StatusArgs): void {
  validateMachineName(args.name);
  const record = new MachineStore().get(args.name);
  const summary = machineSummary(record, machineState(record));
  if (args.json) {
    writeJson(summary);
    return;
  }
  const lines: Array<[string, string]> = [
    ['name', summary.name],
    ['state', summary.state],
    ['image', summary.image ?? '(bare)'],
    ['cpus', String(summary.cpus)],
    ['memory', `${summary.memoryMiB} MiB`],
    ['storage', `${summary.storageGiB} GiB`],
    ['overlay', `${summary.overlayGiB} GiB`],
    ['network', summary.net ? 'on' : 'off'],
    ['created', summary.createdAt],
  ];
  process.stdout.write(lines.map(([k, v]) => `${(k + ':').padEnd(9)} ${v}`).join('\n') + '\n');
}
