import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs, JsonArgs } from '../../context';

export type ImageLsArgs = GlobalArgs & JsonArgs;

export const imageLsCommand: CommandModule<GlobalArgs, ImageLsArgs> = {
  command: 'ls',
  describe: 'List images in the local store',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .option('json', { type: 'boolean', default: false, describe: 'Print a JSON array instead of a table' })
      .example('$0 image ls', 'Show local images'),
  handler: async (args) => (await import('./ls.handler')).runImageLs(args),
};
