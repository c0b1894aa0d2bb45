// The supervisor's own bundle (dist/smolvm-supervise.js, loaded by src/bin.ts for `machine
// _supervise` only): a machine's supervisor lives as long as its VM, and loading the whole CLI
// (its parser, command table and every library) cost it CPU time while its guest starts and
// memory for as long as it runs. This bundle holds the supervisor and what it imports. It takes
// exactly the invocation Machines.start writes; anything else goes to the full CLI.
import { runSupervise, type SuperviseOptions } from './commands/machine/supervise.handler';
import { reportFailure } from './outcome';

/** `machine _supervise --name N [--image-erofs FILE] [--cold]`, or undefined for anything else. */
export function parseSupervise(args: string[]): SuperviseOptions | undefined {
  if (args[0] !== 'machine' || args[1] !== '_supervise') return undefined;
  let name: string | undefined;
  let imageErofs: string | undefined;
  let cold = false;
  for (let i = 2; i < args.length; i++) {
    const arg = args[i];
    const value = args[i + 1];
    if (arg === '--cold') cold = true;
    else if ((arg === '--name' || arg === '--image-erofs') && value !== undefined && !value.startsWith('-')) {
      if (arg === '--name') name = value;
      else imageErofs = value;
      i++;
    } else return undefined;
  }
  return name === undefined ? undefined : { name, ...(imageErofs ? { imageErofs } : {}), cold };
}

/** Runs the supervisor if parseSupervise takes `args`; false (having done nothing) otherwise. */
export function runFastSupervise(args: string[], recipeBundle: string): boolean {
  const parsed = parseSupervise(args);
  if (!parsed) return false;
  runSupervise(parsed, recipeBundle).then(
    () => undefined,
    (err: unknown) => {
      process.exitCode = reportFailure(err, false);
    },
  );
  return true;
}
