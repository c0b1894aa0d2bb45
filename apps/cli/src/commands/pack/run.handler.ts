// `smolvm pack run --sidecar PATH | --from REF [-- CMD]`: a .smolmachine run once, like `machine run`.
import { UsageError } from '@smolvm/common';
// Registers the VM drivers (without it: "no VM driver is usable on this host (no drivers registered)").
import '../../runtime-assets';
import { PackFile } from '@smolvm/pack/local';
import type { PackRunArgs } from './run';
import { runPacked } from './run-packed';
import { packPathFrom } from './source';
import { cliMachines } from '../machine/machines';
import { stubRuntimeCandidates } from '../../stub';

export async function runPackRun(args: PackRunArgs): Promise<number> {
  if (args.sidecar !== undefined && args.from !== undefined) {
    throw new UsageError('--sidecar and --from both name the pack to run', { remedy: 'give one of them' });
  }
  if (args.sidecar === undefined && args.from === undefined) {
    throw new UsageError('pack run needs the pack to run', {
      remedy: 'name it with --sidecar PATH.smolmachine or --from REFERENCE',
    });
  }
  const file = args.from !== undefined ? await packPathFrom(args.from, args.quiet) : (args.sidecar as string);
  return runPacked(PackFile.open(file), {
    command: (args['--'] ?? []).map(String),
    interactive: args.interactive,
    tty: args.tty,
    cold: args.cold,
    debug: args.debug,
    quiet: args.quiet,
    machines: () => cliMachines(),
    program: 'smolvm pack run',
    runtimeCandidates: stubRuntimeCandidates(),
  });
}
