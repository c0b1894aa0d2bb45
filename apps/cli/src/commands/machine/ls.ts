import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs, JsonArgs } from '../../context';

export type LsArgs = GlobalArgs & JsonArgs;

export const lsCommand: CommandModule<GlobalArgs, LsArgs> = {
  command: 'ls',
  describe: 'List all machines',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .option('json', { type: 'boolean', default: false, describe: 'Print a JSON array instead of a table' })
      .example('$0 machine ls', 'Show every machine and its state')
      .example('$0 machine ls --json | jq -r ".[].name"', 'Machine names, for scripts'),
  handler: async (args) => (await import('./ls.handler')).runLs(args),
};
