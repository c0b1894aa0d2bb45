// Hidden: `image _import-base`, run by tools/setup after tools/base/build, so the Debian base of
// bare VMs is in the image store (and `image ls`) right away; bare VMs import it on first use too.
import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../../context';

export const imageImportBaseCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: '_import-base',
  describe: false,
  handler: async () => {
    const { ImageService, ensureBuiltBase } = await import('@smolvm/oci');
    const service = new ImageService();
    try {
      const reference = await ensureBuiltBase(service.store);
      const prepared = await service.prepare(reference, { pull: 'never' });
      process.stdout.write(`${prepared.reference} ${prepared.manifestDigest}\n`);
    } finally {
      await service.close();
    }
  },
};
