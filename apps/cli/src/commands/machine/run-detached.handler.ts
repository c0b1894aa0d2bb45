// `smolvm machine run -d`: an ephemeral machine left running by the persistent machines'
// supervisor. Prints its name (stdout, for scripts) once the agent is ready and init ran.
import os from 'node:os';
import { UsageError } from '@smolvm/common';
import { validateMachineName } from '@smolvm/machine-store';
import { printStartDetail, printStartNotes } from './lifecycle.handler';
import { assertNameFree, machineInput, mergeWorkload } from './machine-input';
import { cliMachines } from './machines';
import type { RunArgs } from './run';

/**
 * The supervisor picks the driver (as SMOLVM_DRIVER): a wrong --driver is named as such here, before anything is made.
 */
async function assertKnownDriver(name: string): Promise<void> {
  const [{ defaultRegistry, UnknownDriverError }] = await Promise.all([
    import('@smolvm/driver-api'),
    import('../../runtime-assets'),
  ]);
  const registry = defaultRegistry();
  if (!registry.get(name))
    throw new UnknownDriverError(
      name,
      registry.list().map((d) => d.name),
      '--driver',
    );
}

const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export async function runDetached(args: RunArgs): Promise<void> {
  const command = (args['--'] ?? []).map(String);
  const name = args.name ?? 'NAME';
  // A command would have no terminal and no exit code to report: it belongs to `machine exec`.
  if (command.length > 0) {
    throw new UsageError(
      `machine run -d takes no command (got "${command.join(' ')}"): the detached machine runs commands through \`machine exec\``,
      {
        remedy: `drop it, then run \`smolvm machine exec --name ${name} -- ${command.join(' ')}\` (or put setup in [dev] init / --init)`,
      },
    );
  }
  if (args.interactive || args.tty) {
    throw new UsageError('-i and -t attach a command to this terminal, and machine run -d runs none', {
      remedy: `drop them; for a shell in the detached machine use \`smolvm machine exec --name ${name} -it -- /bin/sh\``,
    });
  }
  if (args.name !== undefined) validateMachineName(args.name);
  if (args.driver !== undefined) await assertKnownDriver(args.driver);
  const merged = mergeWorkload(args);
  const machines = cliMachines(args.driver ? { SMOLVM_DRIVER: args.driver } : {});
  if (args.name !== undefined) assertNameFree(machines, args.name);
  const { input, imageErofs } = await machineInput(merged, args);
  // A signal before the supervisor runs stops the start there (the record is removed again); after, this command
  // just goes: the supervisor gets no ack, powers the VM off and removes the machine.
  const interrupt = new AbortController();
  let spawned = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (spawned) process.exit(128 + os.constants.signals[signal]);
    interrupt.abort(signal);
  };
  for (const s of STOP_SIGNALS) process.on(s, onSignal);
  try {
    const result = await machines.runDetached(
      { ...input, ...(args.name !== undefined ? { name: args.name } : {}) },
      {
        ...(imageErofs ? { imageErofs } : {}),
        cold: args.cold,
        signal: interrupt.signal,
        onSpawned: () => (spawned = true),
      },
    );
    printStartNotes(args.debug, result.notes);
    const started = result.record.name;
    process.stdout.write(`${started}\n`);
    if (!args.quiet) {
      process.stderr.write(
        `machine "${started}" is running (ephemeral) after ${((result.bootMs ?? 0) / 1000).toFixed(1)} s: \`smolvm machine exec --name ${started} -- CMD\` runs in it, \`smolvm machine stop --name ${started}\` removes it\n`,
      );
    }
  } catch (err) {
    if (interrupt.signal.aborted) {
      process.stderr.write(`smolvm: interrupted (${String(interrupt.signal.reason)}); nothing was started\n`);
      process.exit(128 + os.constants.signals[interrupt.signal.reason as NodeJS.Signals]);
    }
    printStartDetail(err);
    throw err;
  } finally {
    for (const s of STOP_SIGNALS) process.off(s, onSignal);
  }
}
