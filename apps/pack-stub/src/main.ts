// The packed executable (`pack create` writes it next to a .smolmachine): runs the packed machine
// with the same libraries as the CLI. `./my-app [run] [-- CMD]` runs it once; `start`, `exec`,
// `stop`, `status` keep it running as a persistent machine (named after the pack's digest, kept
// in the user's state like any machine); `info` shows the pack.
import path from 'node:path';
import yargs from 'yargs/yargs';
import { hideBin } from 'yargs/helpers';
import { ExitCode, exitCodeOf, exitWhenSettled, formatError, usageFailure } from '@smolvm/common';
import { isSingleExecutable } from '@smolvm/sea';
import { stubRecipeKey } from './early-run';
import { findPayload, selfPath } from './payload';
import type { ExecArgs } from '../../cli/src/commands/machine/exec';
import { skipHelpCache } from '../../cli/src/help-cache';

// Handlers, the drivers and the machines library are loaded by the commands that use them (as the
// CLI's are): `info` or `status` need not evaluate the VM code.
const daemon = () => import('./daemon');
const withDrivers = async () => {
  await import('@smolvm/drivers');
};

interface Args {
  debug: boolean;
  quiet: boolean;
  interactive?: boolean;
  tty?: boolean;
  env?: string[];
  workdir?: string;
  json?: boolean;
  name?: string;
  '--'?: Array<string | number>;
}

function command(args: Args): string[] {
  return (args['--'] ?? []).map(String);
}

export async function main(argv: string[]): Promise<number> {
  const program = `./${path.basename(selfPath())}`;
  const debug = argv.includes('--debug');
  const run = async (args: Args) => {
    const [{ runPacked }] = await Promise.all([import('../../cli/src/commands/pack/run-packed'), withDrivers()]);
    process.exitCode = await runPacked(findPayload(), {
      command: command(args),
      interactive: args.interactive === true,
      tty: args.tty === true,
      debug: args.debug,
      quiet: args.quiet,
      machines: async () => (await daemon()).packMachines(),
      program,
      // The single executable's loader may have begun the restore (early-run.ts).
      ...(isSingleExecutable() ? { recipeKey: stubRecipeKey() } : {}),
    });
  };
  const parser = yargs(argv)
    .scriptName(program)
    .usage(
      `${program} [run] [-i] [-t] [-- COMMAND...]\n\nA machine packed by smolvm: runs it in a micro-VM (QEMU). COMMAND replaces its command.\nA packed running machine is resumed in a temporary machine and COMMAND run in it, then removed.`,
    )
    .parserConfiguration({ 'populate--': true })
    .option('debug', {
      type: 'boolean',
      default: false,
      global: true,
      describe: 'Show stack traces and diagnostic notes on errors',
    })
    .option('quiet', { type: 'boolean', default: false, global: true, describe: 'Print no progress output' })
    .command<Args>(
      ['run', '$0'],
      'Run the machine once (ephemeral)',
      (y) =>
        y
          .option('interactive', { alias: 'i', type: 'boolean', default: false })
          .option('tty', { alias: 't', type: 'boolean', default: false }),
      run,
    )
    .command<Args>(
      'start',
      'Start the machine in the background (/workspace is kept; what an exec writes elsewhere is not)',
      (y) => y,
      async (args) => {
        const [{ startDaemon }] = await Promise.all([daemon(), withDrivers()]);
        await startDaemon(findPayload(), { quiet: args.quiet, program });
      },
    )
    .command<Args>(
      'exec',
      'Run a command in the started machine',
      (y) =>
        y
          .option('interactive', { alias: 'i', type: 'boolean', default: false })
          .option('tty', { alias: 't', type: 'boolean', default: false })
          .option('env', { alias: 'e', type: 'string', array: true })
          .option('workdir', { alias: 'w', type: 'string' }),
      async (args) => {
        const [{ daemonName, statusOfDaemon }, { runExec }] = await Promise.all([
          daemon(),
          import('../../cli/src/commands/machine/exec.handler'),
        ]);
        const name = daemonName(findPayload());
        await statusOfDaemon(name, program, true);
        process.exitCode = await runExec({
          name,
          interactive: args.interactive === true,
          tty: args.tty === true,
          stream: false,
          env: args.env,
          workdir: args.workdir,
          debug: args.debug,
          quiet: args.quiet,
          '--': args['--'],
        } satisfies ExecArgs);
      },
    )
    .command<Args>(
      'stop',
      'Stop the started machine',
      (y) => y,
      async (args) => {
        const [{ stopDaemon }] = await Promise.all([daemon(), withDrivers()]);
        await stopDaemon(findPayload(), { quiet: args.quiet });
      },
    )
    .command<Args>(
      'status',
      'Whether the machine is running',
      (y) => y.option('json', { type: 'boolean', default: false }),
      async (args) => {
        const { daemonName, statusOfDaemon } = await daemon();
        const status = await statusOfDaemon(daemonName(findPayload()), program, false);
        if (args.json) process.stdout.write(JSON.stringify(status) + '\n');
        else process.stdout.write(`${status.state}\n`);
      },
    )
    .command<Args>(
      'info',
      'Show the pack: platform, image, command, resources, sections',
      (y) => y.option('json', { type: 'boolean', default: false }),
      async (args) => {
        const { runPackInspect } = await import('../../cli/src/commands/pack/inspect.handler');
        await runPackInspect({
          path: findPayload().path,
          json: args.json === true,
          debug: args.debug,
          quiet: args.quiet,
        });
      },
    )
    .command<Args>(
      '_supervise',
      false,
      (y) => y.option('name', { type: 'string', demandOption: true }),
      async (args) => {
        const [{ superviseMachine }] = await Promise.all([import('@smolvm/machines'), withDrivers()]);
        await superviseMachine({ name: args.name as string });
      },
    )
    .strict()
    .help()
    .alias('help', 'h')
    .version(false)
    .exitProcess(false)
    .fail(usageFailure(() => program));
  try {
    await skipHelpCache(parser).parseAsync();
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.Ok;
  } catch (err) {
    process.stderr.write(formatError(err) + '\n');
    if (debug && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
    return exitCodeOf(err);
  }
}

/** Runs the stub on process.argv; the single executable's loader (src/sea.ts) calls it after loading the bundle. */
export function runCli(): void {
  // `./my-app info | head` closes the pipe early: not an error worth a message.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(ExitCode.Ok);
    throw err;
  });
  exitWhenSettled(main(hideBin(process.argv)));
}

// The bundle is the program when Node runs it directly, or the --single-file loader compiles it
// (as the file named by argv[1]); in a single executable, src/sea.ts loads it and calls runCli.
if (require.main === module || (process.argv[1] === __filename && !isSingleExecutable())) runCli();
