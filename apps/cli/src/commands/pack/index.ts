// `smolvm pack ...`: ship a machine as an executable plus a .smolmachine payload.
import type { CommandGroup } from '../group';
import { packCreateCommand } from './create';
import { packInspectCommand } from './inspect';
import { packRunCommand } from './run';

export const packGroup: CommandGroup = {
  name: 'pack',
  describe: 'Pack a machine into an executable + .smolmachine, run and inspect packs',
  subcommands: [packCreateCommand, packRunCommand, packInspectCommand],
};
