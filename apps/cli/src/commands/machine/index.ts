// `smolvm machine ...`: only subcommands that work are registered here.
import type { CommandGroup } from '../group';
import { lsCommand } from './ls';
import { runCommand } from './run';
import { statusCommand } from './status';

export const machineGroup: CommandGroup = {
  name: 'machine',
  describe: 'Create, run and manage micro-VMs',
  subcommands: [runCommand, lsCommand, statusCommand],
};
