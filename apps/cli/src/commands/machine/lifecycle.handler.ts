// `machine start|stop|delete`.
import { validateMachineName } from '@smolvm/machine-store';
import { MachineStartError } from '@smolvm/machines';
import { takeEarlySupervisor } from '@smolvm/machines/early-start';
import { cliMachines, machineImageErofs } from './machines';
import type { DeleteArgs } from './delete';
import type { StartArgs } from './start';
import type { StopArgs } from './stop';

export async function runStart(args: StartArgs): Promise<void> {
  // The supervisor the executable's loader spawned for this start, if it did: Machines.start
  // adopts it or ends it, and releases the machine's lock either way.
  const early = args.cold ? undefined : takeEarlySupervisor(args.name);
  let imageErofs: string | undefined;
  const machines = cliMachines();
  try {
    validateMachineName(args.name);
    imageErofs = await machineImageErofs(machines.store.get(args.name), args.quiet);
  } catch (err) {
    await early?.end();
    early?.lock.release();
    throw err;
  }
  try {
    const result = await machines.start(args.name, {
      ...(imageErofs ? { imageErofs } : {}),
      cold: args.cold,
      ...(early ? { early } : {}),
    });
    printStartNotes(args.debug, result.notes);
    if (result.alreadyRunning) process.stderr.write(`machine "${args.name}" is already running\n`);
    else if (!args.quiet)
      process.stderr.write(`machine "${args.name}" started in ${((result.bootMs ?? 0) / 1000).toFixed(1)} s\n`);
  } catch (err) {
    printStartDetail(err);
    throw err;
  }
}

/** With --debug: why the supervisor booted the VM rather than restoring it (the same lines are in supervisor.log). */
export function printStartNotes(debug: boolean, notes: string[] | undefined): void {
  if (debug) for (const note of notes ?? []) process.stderr.write(`smolvm: note: ${note}\n`);
}

/** What the guest printed last is what explains a failed boot or init command. */
export function printStartDetail(err: unknown): void {
  if (err instanceof MachineStartError && err.detail.length > 0)
    process.stderr.write(err.detail.map((l) => `  | ${l}\n`).join(''));
}

export async function runStop(args: StopArgs): Promise<void> {
  validateMachineName(args.name);
  const machines = cliMachines();
  const { ephemeral } = machines.store.get(args.name);
  const stopped = await machines.stop(args.name, { timeoutMs: Math.max(1, args.timeout) * 1000 });
  if (ephemeral) {
    if (!args.quiet)
      process.stderr.write(`machine "${args.name}" ${stopped ? 'stopped and ' : ''}removed (ephemeral)\n`);
  } else if (!stopped) process.stderr.write(`machine "${args.name}" is not running\n`);
}

export async function runDelete(args: DeleteArgs): Promise<void> {
  validateMachineName(args.name);
  await cliMachines().delete(args.name, { force: args.force });
}
