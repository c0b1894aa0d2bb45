import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../../context';

export type StopArgs = GlobalArgs & { name: string; timeout: number };

export const stopCommand: CommandModule<GlobalArgs, StopArgs> = {
  command: 'stop',
  describe: 'Stop a machine: graceful guest shutdown, then a kill after the timeout',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .option('name', { alias: 'n', type: 'string', default: 'default', describe: 'Machine name' })
      .option('timeout', {
        type: 'number',
        default: 30,
        describe: 'Seconds to wait for a graceful shutdown before killing the VM',
      })
      .example('$0 machine stop --name dev', 'Power "dev" off; its disks keep everything'),
  handler: async (args) => (await import('./lifecycle.handler')).runStop(args),
};
