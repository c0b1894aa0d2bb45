// How a CLI process ends, shared by the full CLI (main.ts) and the fast exec path (exec-fast.ts):
// a failure is one line on stderr (the stack too with --debug) and an exit code.
import { ExitCode, exitCodeOf, formatError } from '@smolvm/common';

export function reportFailure(err: unknown, debug: boolean): number {
  process.stderr.write(formatError(err) + '\n');
  if (debug && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
  return exitCodeOf(err);
}

export function onStdoutError(err: NodeJS.ErrnoException): void {
  // `smolvm machine ls | head` closes the pipe early: that is not an error worth a message.
  if (err.code === 'EPIPE') process.exit(ExitCode.Ok);
  throw err;
}
