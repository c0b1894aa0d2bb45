// `smolvm pack ...`: ship a machine as an executable plus a .smolmachine payload; move packs
// through OCI registries.
import type { CommandGroup } from '../group';
import { packCreateCommand } from './create';
import { packInspectCommand } from './inspect';
import { packPullCommand } from './pull';
import { packPushCommand } from './push';
import { packRunCommand } from './run';

export const packGroup: CommandGroup = {
  name: 'pack',
  describe: 'Pack a machine into an executable + .smolmachine, run and inspect packs, push and pull them',
  subcommands: [packCreateCommand, packRunCommand, packInspectCommand, packPushCommand, packPullCommand],
};
