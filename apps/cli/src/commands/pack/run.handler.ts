// `smolvm pack run --sidecar PATH [-- CMD]`: a .smolmachine run once, like `machine run`.
import { UsageError } from '@smolvm/common';
import { PackFile } from '@smolvm/pack';
import type { PackRunArgs } from './run';
import { runPacked } from './run-packed';

export async function runPackRun(args: PackRunArgs): Promise<number> {
  if (!args.sidecar) throw new UsageError('pack run needs the pack to run', { remedy: 'name it with --sidecar PATH.smolmachine' });
  return runPacked(PackFile.open(args.sidecar), {
    command: (args['--'] ?? []).map(String),
    interactive: args.interactive,
    tty: args.tty,
    cold: args.cold,
    debug: args.debug,
    program: 'smolvm pack run',
  });
}
