// The fast exec path (dist/smolvm-exec.js, loaded by src/bin.ts for `machine exec` only): an exec
// on a running machine is a short session with its supervisor, so the CLI's own start-up was most
// of its time. This bundle holds the exec handler and what it imports, and none of the CLI's
// parser, command table or libraries. It takes only the plain forms of exec's flags; anything
// else (--help, a typo, an unusual spelling, a missing `--`) is declined, and the full CLI handles
// the invocation as it always did, with its own messages.
import { runExec } from './commands/machine/exec.handler';
import type { ExecArgs } from './commands/machine/exec';
import { onStdoutError, reportFailure } from './outcome';

const BOOLEANS: Record<string, 'debug' | 'quiet' | 'interactive' | 'tty' | 'stream'> = {
  '--debug': 'debug',
  '--quiet': 'quiet',
  '-i': 'interactive',
  '--interactive': 'interactive',
  '-t': 'tty',
  '--tty': 'tty',
  '--stream': 'stream',
};
const VALUES: Record<string, 'name' | 'env' | 'workdir'> = {
  '-n': 'name',
  '--name': 'name',
  '-e': 'env',
  '--env': 'env',
  '-w': 'workdir',
  '--workdir': 'workdir',
};

/**
 * The exec arguments of `args` (the words after `smolvm`), if they are exactly `machine exec`,
 * flags of the forms above, `--` and a command; undefined for anything else. What it accepts,
 * the full CLI parses to the same values: single-value flags keep their last value, `-e` adds one
 * entry per use; a flag value that looks like a flag, or a stray word, is declined (yargs would
 * read them its own way).
 */
export function parseFastExec(args: string[]): ExecArgs | undefined {
  const end = args.indexOf('--');
  if (end < 0) return undefined;
  const parsed: ExecArgs = {
    debug: false,
    quiet: false,
    name: 'default',
    interactive: false,
    tty: false,
    stream: false,
    '--': args.slice(end + 1),
  };
  const words: string[] = [];
  for (let i = 0; i < end; i++) {
    const arg = args[i];
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    if (eq < 0 && (arg === '-it' || arg === '-ti')) {
      parsed.interactive = true;
      parsed.tty = true;
    } else if (eq < 0 && BOOLEANS[arg]) {
      parsed[BOOLEANS[arg]] = true;
    } else if (VALUES[flag]) {
      const value = eq > 0 ? arg.slice(eq + 1) : args[++i];
      if (value === undefined || i >= end || value.startsWith('-') || value === '') return undefined;
      const key = VALUES[flag];
      if (key === 'env') parsed.env = [...(parsed.env ?? []), value];
      else parsed[key] = value;
    } else if (arg.startsWith('-')) {
      return undefined;
    } else {
      words.push(arg);
    }
  }
  return words.length === 2 && words[0] === 'machine' && words[1] === 'exec' ? parsed : undefined;
}

/** Runs `machine exec` if parseFastExec takes `args`; false (having done nothing) otherwise. */
export function runFastExec(args: string[]): boolean {
  const parsed = parseFastExec(args);
  if (!parsed) return false;
  process.stdout.on('error', onStdoutError);
  runExec(parsed).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.exitCode = reportFailure(err, parsed.debug);
    },
  );
  return true;
}
