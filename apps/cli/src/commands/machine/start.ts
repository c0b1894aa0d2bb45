import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../../context';

export type StartArgs = GlobalArgs & { name: string };

export const startCommand: CommandModule<GlobalArgs, StartArgs> = {
  command: 'start',
  describe: 'Start a persistent machine (returns once it is ready; runs [dev] init)',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .option('name', { alias: 'n', type: 'string', default: 'default', describe: 'Machine name' })
      .example('$0 machine start --name dev', 'Boot "dev"; later `machine exec` runs in it'),
  handler: async (args) => (await import('./lifecycle.handler')).runStart(args),
};
