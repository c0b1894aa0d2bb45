// `smolvm pack ...`: packed machines (.smolmachine) and registries.
import type { CommandGroup } from '../group';
import { packPullCommand } from './pull';
import { packPushCommand } from './push';

export const packGroup: CommandGroup = {
  name: 'pack',
  describe: 'Push and pull packed machines (.smolmachine) to and from OCI registries',
  subcommands: [packPushCommand, packPullCommand],
};
