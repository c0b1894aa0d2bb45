// The fast start path (dist/smolvm-start.js, loaded by src/bin.ts for a plain `machine start`):
// the loader has spawned the machine's supervisor already (prestart.ts), and what is left of the
// command is adopting it and waiting for its report. Loading the whole CLI for that cost ~30 ms
// of CPU while the supervisor and QEMU restore the machine on the same cores. This bundle holds
// the start handler and what it imports, none of the CLI's parser or command table. Any other
// form (--cold, --help, a typo) is declined: the full CLI handles it with its own messages.
import { runStart } from './commands/machine/lifecycle.handler';
import { reportFailure } from './outcome';
import { parsePlainStart } from './plain-start';

/** Runs `machine start` if parsePlainStart takes `args`; false (having done nothing) otherwise. */
export function runFastStart(args: string[]): boolean {
  const parsed = parsePlainStart(args);
  if (!parsed) return false;
  runStart({ ...parsed, cold: false }).then(
    () => undefined,
    (err: unknown) => {
      process.exitCode = reportFailure(err, parsed.debug);
    },
  );
  return true;
}
