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
    // One turn of the event loop before the rest loads: an early start that sets its guest up
    // sends the setup once QEMU has connected (prestart.ts), which only an event loop turn sees.
    await new Promise((resolve) => setImmediate(resolve));
    const [{ superviseMachine }, { agentBundlePath, guestAssets }, { keepRecipe, takePrestarted }, { smolvmDirs }] =
      await Promise.all([
        import('@smolvm/machines'),
        import('../../runtime-assets'),
        import('../../prestart'),
        import('@smolvm/common'),
      ]);
    const early = takePrestarted();
    await superviseMachine({
      name: args.name,
      agentBundle: agentBundlePath(),
      guestAssets: guestAssets(),
      ...(args['image-erofs'] ? { imageErofs: args['image-erofs'] } : {}),
      cold: args.cold === true,
      ...(early ? { prestarted: early } : {}),
      // The machine's next start begins this restore before its supervisor has loaded (prestart.ts);
      // __filename is the CLI bundle the loader keys recipes by.
      onRestoreRecipe: (recipe) => keepRecipe(process.argv.slice(2), smolvmDirs(process.env).cache, __filename, recipe),
    });
  },
};
