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
    const [{ superviseMachine }, { agentBundlePath, guestAssets }] = await Promise.all([
      import('@smolvm/machines'),
      import('../../runtime-assets'),
    ]);
    await superviseMachine({
      name: args.name,
      agentBundle: agentBundlePath(),
      guestAssets: guestAssets(),
      ...(args['image-erofs'] ? { imageErofs: args['image-erofs'] } : {}),
      cold: args.cold === true,
    });
  },
};
