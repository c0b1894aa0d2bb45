import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs, JsonArgs } from '../../context';

export type ImagesArgs = GlobalArgs & JsonArgs & { name?: string };

export const imagesCommand: CommandModule<GlobalArgs, ImagesArgs> = {
  command: 'images',
  describe: 'Show the image each machine is based on and what its disks use',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .option('name', { alias: 'n', type: 'string', describe: 'Only this machine' })
      .option('json', { type: 'boolean', default: false, describe: 'Print a JSON array' })
      .example('$0 machine images', "Every machine's image, digest and disk usage"),
  handler: async (args) => (await import('./manage.handler')).runImages(args),
};
