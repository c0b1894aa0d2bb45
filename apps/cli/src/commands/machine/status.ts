import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs, JsonArgs } from '../../context';

export type StatusArgs = GlobalArgs & JsonArgs & { name: string };

export const statusCommand: CommandModule<GlobalArgs, StatusArgs> = {
  command: 'status',
  describe: 'Show the state of a machine',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .option('name', { alias: 'n', type: 'string', default: 'default', describe: 'Machine name' })
      .option('json', { type: 'boolean', default: false, describe: 'Print a JSON object' })
      .example('$0 machine status', 'State of the machine named "default"')
      .example('$0 machine status --name web --json', 'State of "web" as JSON'),
  handler: async (args) => (await import('./status.handler')).runStatus(args),
};
