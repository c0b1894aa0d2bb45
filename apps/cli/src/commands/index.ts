// The top-level command table. Groups list only commands that work; each command module imports
// its handler lazily, so `smolvm --help` evaluates nothing else.
import type { CommandGroup } from './group';
import { configGroup } from './config';
import { imageGroup } from './image';
import { machineGroup } from './machine';
import { packGroup } from './pack';
import { serveGroup } from './serve';

export const commandGroups: CommandGroup[] = [machineGroup, packGroup, imageGroup, configGroup, serveGroup];
