// `smolvm config ...`: user configuration files.
import type { CommandGroup } from '../group';
import { registriesCommand } from './registries';

export const configGroup: CommandGroup = {
  name: 'config',
  describe: 'Edit smolvm configuration',
  subcommands: [registriesCommand],
};
