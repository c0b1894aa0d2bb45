import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs, JsonArgs } from '../../context';

export type PruneArgs = GlobalArgs & JsonArgs & { name: string };

export const pruneCommand: CommandModule<GlobalArgs, PruneArgs> = {
  command: 'prune',
  describe: "Give a stopped machine's unused disk space back to the host",
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .option('name', { alias: 'n', type: 'string', default: 'default', describe: 'Machine name' })
      .option('json', { type: 'boolean', default: false, describe: 'Print the bytes reclaimed as JSON' })
      .usage(
        'smolvm machine prune [--name NAME]\n\nThe disks are sparse files; blocks the guest freed (deleted files) stay allocated on the host\nuntil pruned. Requires the machine to be stopped.',
      )
      .example(
        '$0 machine stop --name dev && $0 machine prune --name dev',
        'Reclaim space after deleting files in "dev"',
      ),
  handler: async (args) => (await import('./manage.handler')).runPrune(args),
};
