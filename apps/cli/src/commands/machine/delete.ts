import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../../context';

export type DeleteArgs = GlobalArgs & { name: string; force: boolean };

export const deleteCommand: CommandModule<GlobalArgs, DeleteArgs> = {
  command: 'delete <name>',
  describe: 'Delete a machine and its disks',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .positional('name', { type: 'string', demandOption: true, describe: 'Machine name' })
      .option('force', {
        alias: 'f',
        type: 'boolean',
        default: false,
        describe: 'Delete even while it runs (the VM is killed)',
      })
      .example('$0 machine delete dev', 'Delete the stopped machine "dev"')
      .example('$0 machine delete dev -f', 'Kill and delete "dev" even if it runs'),
  handler: async (args) => (await import('./lifecycle.handler')).runDelete(args),
};
