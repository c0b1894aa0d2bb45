// `smolvm image ...`: the local image store, usable without any machine.
import type { CommandGroup } from '../group';
import { imageImportBaseCommand } from './import-base';
import { imageLsCommand } from './ls';
import { imagePruneCommand } from './prune';
import { imagePullCommand } from './pull';
import { imageRmCommand } from './rm';

export const imageGroup: CommandGroup = {
  name: 'image',
  describe: 'Pull and manage OCI images in the local store',
  subcommands: [imagePullCommand, imageLsCommand, imageRmCommand, imagePruneCommand, imageImportBaseCommand],
};
