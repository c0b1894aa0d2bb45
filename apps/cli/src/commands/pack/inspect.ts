import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs, JsonArgs } from '../../context';

export type PackInspectArgs = GlobalArgs & JsonArgs & { path: string };

export const packInspectCommand: CommandModule<GlobalArgs, PackInspectArgs> = {
  command: 'inspect <path>',
  describe: "Show a .smolmachine's manifest and sections",
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .positional('path', {
        type: 'string',
        demandOption: true,
        describe: 'A .smolmachine, or a --single-file executable',
      })
      .option('json', {
        type: 'boolean',
        default: false,
        describe: 'Print the manifest (with the pack digest) as JSON',
      })
      .example('$0 pack inspect ./my-app.smolmachine', 'Platform, image, command, resources, sections and sizes'),
  handler: async (args) => (await import('./inspect.handler')).runPackInspect(args),
};
