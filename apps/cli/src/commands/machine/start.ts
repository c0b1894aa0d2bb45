import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../../context';

export type StartArgs = GlobalArgs & { name: string; cold: boolean };

export const startCommand: CommandModule<GlobalArgs, StartArgs> = {
  command: 'start',
  describe: 'Start a persistent machine (returns once it is ready; runs [dev] init)',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .option('name', { alias: 'n', type: 'string', default: 'default', describe: 'Machine name' })
      .option('cold', {
        type: 'boolean',
        default: false,
        describe: 'Boot the VM instead of restoring the boot snapshot of its shape',
      })
      .example(
        '$0 machine start --name dev',
        'Start "dev" (restored from the boot snapshot of its shape); later `machine exec` runs in it',
      )
      .example('$0 machine start --name dev --debug', 'The same, saying why if it had to boot instead')
      .example('$0 machine start --name dev --cold', 'Boot it instead of restoring it'),
  handler: async (args) => (await import('./lifecycle.handler')).runStart(args),
};
