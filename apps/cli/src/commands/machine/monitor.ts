import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../../context';

export type MonitorArgs = GlobalArgs & { name: string };

export const monitorCommand: CommandModule<GlobalArgs, MonitorArgs> = {
  command: 'monitor',
  describe: 'Keep a machine up in the foreground: run its [health] check, restart it when it fails or dies',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .option('name', { alias: 'n', type: 'string', default: 'default', describe: 'Machine name' })
      .usage(
        'smolvm machine monitor [--name NAME]\n\nStarts the machine if needed, then runs the [health] exec check of the Smolfile it was created\nfrom every interval (after startup_grace); after `retries` failures in a row it restarts the\nmachine. Without [health] it restarts the machine whenever it stops. Ctrl-C ends monitoring and\nleaves the machine running.',
      )
      .example('$0 machine monitor --name web', 'Watch "web" until Ctrl-C'),
  handler: async (args) => (await import('./manage.handler')).runMonitor(args),
};
