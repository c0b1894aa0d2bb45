import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs, JsonArgs } from '../../context';

export type ImagePruneArgs = GlobalArgs & JsonArgs & { 'dry-run': boolean };

export const imagePruneCommand: CommandModule<GlobalArgs, ImagePruneArgs> = {
  command: 'prune',
  describe: 'Delete blobs and prepared images no local image refers to',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .option('dry-run', { type: 'boolean', default: false, describe: 'Only report what would be deleted' })
      .option('json', { type: 'boolean', default: false, describe: 'Print the result as JSON' })
      .example('$0 image prune', 'Free space after removing images'),
  handler: async (args) => (await import('./prune.handler')).runImagePrune(args),
};
