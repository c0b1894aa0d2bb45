// The plain forms of `machine start`, for the two things that act on them before the CLI loads:
// the loader's early supervisor (prestart.ts) and the start's own bundle (start-fast.ts).

export interface PlainStart {
  name: string;
  debug: boolean;
  quiet: boolean;
}

/**
 * `machine start [--name N | -n N | --name=N] [--debug] [--quiet]`; undefined for any other form
 * (--cold, --help, a typo, another spelling), which the CLI handles as always. What it takes, the
 * CLI parses to the same values.
 */
export function parsePlainStart(args: string[]): PlainStart | undefined {
  if (args[0] !== 'machine' || args[1] !== 'start') return undefined;
  const start: PlainStart = { name: 'default', debug: false, quiet: false };
  for (let i = 2; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--debug') start.debug = true;
    else if (arg === '--quiet') start.quiet = true;
    else if (arg === '--name' || arg === '-n') {
      const value = args[++i];
      if (value === undefined || value === '' || value.startsWith('-')) return undefined;
      start.name = value;
    } else if (arg.startsWith('--name=') && arg.length > '--name='.length) {
      start.name = arg.slice('--name='.length);
    } else {
      return undefined;
    }
  }
  return start;
}
