import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../../context';

export type ImageRmArgs = GlobalArgs & { image: string; platform?: string };

export const imageRmCommand: CommandModule<GlobalArgs, ImageRmArgs> = {
  command: 'rm',
  describe: 'Remove an image from the local store and free its unshared data',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .option('image', {
        alias: 'I',
        type: 'string',
        demandOption: true,
        describe: 'Image reference, or a manifest digest from `image ls`',
      })
      .option('platform', { type: 'string', describe: 'Only the entry of this platform' })
      .example('$0 image rm --image alpine', 'Remove alpine:latest'),
  handler: async (args) => (await import('./rm.handler')).runImageRm(args),
};
