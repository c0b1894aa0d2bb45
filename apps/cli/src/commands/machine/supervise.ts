// Hidden: the detached supervisor process `machine start` spawns. Not for users.
import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../../context';

export type SuperviseArgs = GlobalArgs & { name: string; 'image-erofs'?: string; cold?: boolean };

export const superviseCommand: CommandModule<GlobalArgs, SuperviseArgs> = {
  command: '_supervise',
  describe: false,
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .option('name', { type: 'string', demandOption: true })
      .option('image-erofs', { type: 'string' })
      .option('cold', { type: 'boolean' }),
  handler: async (args) => {
    const { runSupervise } = await import('./supervise.handler');
    // __filename: the CLI bundle, which the executable's loader keys recipes by.
    await runSupervise(
      {
        name: args.name,
        ...(args['image-erofs'] ? { imageErofs: args['image-erofs'] } : {}),
        cold: args.cold === true,
      },
      __filename,
    );
  },
};
