// `run` of a packed running machine (a version 2 pack): the snapshot is imported (once per pack),
// a temporary machine made from it and resumed with its processes running, and COMMAND run in it
// by exec. The machine then goes with its disks on every way out: exit, error, Ctrl-C, SIGTERM.
import { NotFoundError, SmolvmError, UsageError, smolvmDirs } from '@smolvm/common';
import { MachineStartError, importPackedSnapshot, type Machines } from '@smolvm/machines';
import type { PackFile, PackManifest } from '@smolvm/pack/local';
import { runExec } from '../machine/exec.handler';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
type StopSignal = (typeof SIGNALS)[number];
const SIGNAL_EXIT: Record<StopSignal, number> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };

/** A signal that came before the command started: nothing ran, and what was made is removed. */
class InterruptedError extends SmolvmError {
  override readonly exitCode: number;
  constructor(signal: StopSignal) {
    super(`interrupted by ${signal} before the command started`);
    this.exitCode = SIGNAL_EXIT[signal];
  }
}

/**
 * What runs in the resumed machine: COMMAND (after the pack's entrypoint, as `run` of any pack),
 * else the pack's recorded command. A pack that records none needs one: a running machine has
 * nothing to start by itself.
 */
export function snapshotRunArgv(manifest: Pick<PackManifest, 'entrypoint' | 'cmd'>, command: string[]): string[] {
  const argv = [...manifest.entrypoint, ...(command.length > 0 ? command : manifest.cmd)];
  if (argv.length === 0)
    throw new UsageError('the pack holds a running machine and records no command to run in it', {
      remedy: 'name one after --, e.g. `-- cat /etc/os-release`',
    });
  return argv;
}

export interface SnapshotRunOptions {
  command: string[];
  interactive: boolean;
  tty: boolean;
  cold?: boolean;
  debug?: boolean;
  quiet?: boolean;
}

export async function runPackedSnapshot(pack: PackFile, machines: Machines, o: SnapshotRunOptions): Promise<number> {
  if (o.cold)
    throw new UsageError('--cold boots, and this pack holds a running machine, which is resumed', {
      remedy: 'leave out --cold',
    });
  const argv = snapshotRunArgv(pack.manifest, o.command);
  // Until the command runs, a signal only marks the run as ended: the steps finish, then all is
  // removed (the default action would leave the machine's supervisor and VM running).
  let interrupted: StopSignal | undefined;
  const onSignal = (signal: StopSignal) => (interrupted ??= signal);
  for (const s of SIGNALS) process.on(s, onSignal);
  const checkpoint = () => {
    if (interrupted) throw new InterruptedError(interrupted);
  };
  let name: string | undefined;
  try {
    if (!o.quiet && process.stderr.isTTY)
      process.stderr.write(`importing the running machine packed in ${pack.path}...\n`);
    const id = await importPackedSnapshot(machines, pack, smolvmDirs().cache);
    checkpoint();
    const network = pack.manifest.network;
    const started = await machines.runFromSnapshot(id, {
      net: network.net,
      allowHosts: network.allow_hosts,
      allowCidrs: network.allow_cidrs,
    });
    name = started.record.name;
    if (o.debug) for (const note of started.notes ?? []) process.stderr.write(`smolvm: note: ${note}\n`);
    checkpoint();
    // From here a signal goes to the command (runSession forwards it), whose exit code is ours.
    return await runExec({
      name,
      interactive: o.interactive,
      tty: o.tty,
      stream: false,
      debug: o.debug === true,
      quiet: o.quiet === true,
      '--': argv,
    });
  } catch (err) {
    if (err instanceof MachineStartError && err.detail.length > 0)
      process.stderr.write(err.detail.map((l) => `  | ${l}\n`).join(''));
    throw err;
  } finally {
    if (name !== undefined)
      await machines.delete(name, { force: true }).catch((e: unknown) => {
        if (!(e instanceof NotFoundError)) throw e;
      });
    for (const s of SIGNALS) process.off(s, onSignal);
  }
}
