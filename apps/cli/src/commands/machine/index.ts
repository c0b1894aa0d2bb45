// `smolvm machine ...`: only subcommands that work are registered here.
import type { CommandGroup } from '../group';
import { cpCommand } from './cp';
import { createCommand } from './create';
import { deleteCommand } from './delete';
import { execCommand } from './exec';
import { forkCommand } from './fork';
import { imagesCommand } from './images';
import { lsCommand } from './ls';
import { monitorCommand } from './monitor';
import { pruneCommand } from './prune';
import { resizeCommand } from './resize';
import { runCommand } from './run';
import { snapshotCommand } from './snapshot';
import { startCommand } from './start';
import { statusCommand } from './status';
import { stopCommand } from './stop';
import { superviseCommand } from './supervise';

export const machineGroup: CommandGroup = {
  name: 'machine',
  describe: 'Create, run and manage micro-VMs',
  subcommands: [
    runCommand,
    createCommand,
    startCommand,
    execCommand,
    cpCommand,
    stopCommand,
    deleteCommand,
    statusCommand,
    lsCommand,
    monitorCommand,
    imagesCommand,
    pruneCommand,
    resizeCommand,
    snapshotCommand,
    forkCommand,
    superviseCommand,
  ],
};
