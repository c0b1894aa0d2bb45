// skipHelpCache: a nested command runs without yargs rendering its help, and help, usage errors
// and handler failures behave as before.
import yargs from 'yargs/yargs';
import type { Argv } from 'yargs';
import { usageFailure } from '@smolvm/common';
import { skipHelpCache } from '../src/help-cache';

function parser(argv: string[], handler: () => Promise<void>): Argv {
  return yargs(argv)
    .scriptName('t')
    .command('machine', 'machines', (y) =>
      y
        .command('create <name>', 'create one', (c) => c.option('cpus', { type: 'number', describe: 'vCPUs' }), handler)
        .demandCommand(1),
    )
    .strict()
    .help()
    .exitProcess(false)
    .fail(usageFailure(() => 't machine create'));
}

/** Counts the help texts the parser renders (usage.help). */
function countHelp(p: Argv): () => number {
  const usage = (p as unknown as { getInternalMethods(): { getUsageInstance(): { help(): string } } })
    .getInternalMethods()
    .getUsageInstance();
  let n = 0;
  const help = usage.help.bind(usage);
  usage.help = () => {
    n++;
    return help();
  };
  return () => n;
}

describe('skipHelpCache', () => {
  it('yargs renders the help of every command it runs; with skipHelpCache it does not', async () => {
    let ran = 0;
    const plain = parser(['machine', 'create', 'a', '--cpus', '2'], async () => void ran++);
    const plainHelps = countHelp(plain);
    await plain.parseAsync();
    expect([ran, plainHelps()]).toEqual([1, 1]);

    const skipped = parser(['machine', 'create', 'b', '--cpus', '2'], async () => void ran++);
    const skippedHelps = countHelp(skipped);
    const argv = await skipHelpCache(skipped).parseAsync();
    expect([ran, skippedHelps(), argv.name, argv.cpus]).toEqual([2, 0, 'b', 2]);
  });

  it('--help still prints the command help; usage errors and handler failures still reach the caller', async () => {
    const logs: string[] = [];
    const log = jest.spyOn(console, 'log').mockImplementation((text: string) => void logs.push(text));
    try {
      await skipHelpCache(parser(['machine', 'create', '--help'], async () => undefined)).parseAsync();
    } finally {
      log.mockRestore();
    }
    expect(logs.join('\n')).toMatch(/t machine create <name>[\s\S]*--cpus\s+vCPUs/);

    // yargs throws a validation error synchronously, a handler's failure as a rejection.
    expect(() =>
      skipHelpCache(parser(['machine', 'create', 'a', '--bogus'], async () => undefined)).parseAsync(),
    ).toThrow(/Unknown argument: bogus/);
    await expect(
      skipHelpCache(
        parser(['machine', 'create', 'a'], async () => {
          throw new Error('the handler failed');
        }),
      ).parseAsync(),
    ).rejects.toThrow('the handler failed');
  });
});
