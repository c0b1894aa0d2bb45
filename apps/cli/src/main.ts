// The CLI proper (dist/smolvm-main.js, loaded by src/bin.ts): parse, dispatch to a lazily loaded
// handler, turn every failure into one line on stderr and an exit code (0 ok, 1 runtime error,
// 2 usage error).
import yargs from 'yargs/yargs';
import { hideBin } from 'yargs/helpers';
import { ExitCode, exitWhenSettled, usageFailure } from '@smolvm/common';
import { commandGroups } from './commands';
import { commandPath, groupCommand } from './commands/group';
import { skipHelpCache } from './help-cache';
import type { GlobalArgs } from './context';
import { onStdoutError, reportFailure } from './outcome';
import { smolvmVersion } from './version';

export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  const width = process.stdout.isTTY ? Math.min(110, process.stdout.columns || 80) : 100;
  let parser = yargs(argv)
    .scriptName('smolvm')
    .usage('smolvm <command> [options]\n\nBuild and run portable, self-contained micro-VMs. No daemon, no Docker.')
    .option('debug', {
      type: 'boolean',
      default: false,
      global: true,
      describe: 'Show stack traces and diagnostic notes on errors',
    })
    .option('quiet', { type: 'boolean', default: false, global: true, describe: 'Print no progress output' })
    .strict()
    .recommendCommands()
    .demandCommand(1, 'Name a command')
    .version(smolvmVersion())
    .alias('version', 'V')
    .help()
    .alias('help', 'h')
    .wrap(width)
    .exitProcess(false)
    .fail(usageFailure(() => commandPath(commandGroups, argv)))
    .epilogue('Run `smolvm <command> --help` for the options of a command.');
  for (const group of commandGroups) parser = parser.command(groupCommand(group));

  try {
    await skipHelpCache(parser).parseAsync();
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.Ok;
  } catch (err) {
    return reportFailure(err, debug);
  }
}

/** Runs the CLI on process.argv; src/bin.ts (dist/smolvm.js) calls it once it has loaded this bundle. */
export function runCli(): void {
  process.stdout.on('error', onStdoutError);
  exitWhenSettled(main(hideBin(process.argv)));
}

// `node dist/smolvm-main.js` works too, without the code cache.
if (require.main === module) runCli();

export type { GlobalArgs };
