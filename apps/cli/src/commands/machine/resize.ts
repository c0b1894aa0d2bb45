import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../../context';
import { lastValue } from './workload-options';

export type ResizeArgs = GlobalArgs & {
  name: string;
  cpus?: string;
  memory?: string;
  storage?: string;
  overlay?: string;
};

export const resizeCommand: CommandModule<GlobalArgs, ResizeArgs> = {
  command: 'resize',
  describe: "Change a stopped machine's vCPUs and memory, or grow its disks",
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .option('name', { alias: 'n', type: 'string', default: 'default', describe: 'Machine name' })
      .option('cpus', { coerce: lastValue, type: 'string', describe: 'vCPUs' })
      .option('memory', { coerce: lastValue, type: 'string', describe: 'Memory, e.g. 512, 2G' })
      .option('storage', {
        coerce: lastValue,
        type: 'string',
        describe: 'Grow the storage disk (/workspace) to this many GiB',
      })
      .option('overlay', {
        coerce: lastValue,
        type: 'string',
        describe: 'Grow the overlay disk (root filesystem changes) to this many GiB',
      })
      .example('$0 machine resize --name dev --cpus 2 --memory 4G', 'More resources from the next start')
      .example('$0 machine resize --name dev --storage 40', 'Grow /workspace to 40 GiB (data kept)'),
  handler: async (args) => (await import('./manage.handler')).runResize(args),
};
