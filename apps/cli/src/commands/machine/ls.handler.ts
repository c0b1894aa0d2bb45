import { renderTable, writeJson } from '../../output/table';
import { machineSummary } from '@smolvm/machines';
import { stateLabel } from './summary';
import { cliMachines } from './machines';
import type { LsArgs } from './ls';

export async function runLs(args: LsArgs): Promise<void> {
  // Running machines are pinged through their supervisors (in parallel); nothing is changed.
  const { machines, skipped } = await cliMachines().list();
  const rows = machines.map((m) => machineSummary(m.record, m.state));
  if (args.json) {
    writeJson(rows);
  } else if (rows.length === 0) {
    process.stderr.write('no machines yet; create one with `smolvm machine create NAME`\n');
  } else {
    process.stdout.write(
      renderTable(
        ['NAME', 'STATE', 'IMAGE', 'CPUS', 'MEMORY', 'NET', 'CREATED'],
        rows.map((m) => [
          m.name,
          stateLabel(m),
          m.image ?? '(bare)',
          String(m.cpus),
          `${m.memoryMiB} MiB`,
          m.net ? 'on' : 'off',
          m.createdAt,
        ]),
      ),
    );
  }
  // Damaged entries are reported, never fatal: one broken machine must not hide the others.
  for (const entry of skipped) {
    if (entry.reason === 'in-progress' || entry.reason === 'leftover') continue;
    process.stderr.write(`warning: skipped ${entry.path}: ${entry.detail}\n`);
  }
}
