// The top-level command table. Each group registers only commands that work; handlers are
// imported lazily inside each command module so `smolvm --help` evaluates nothing else.
import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../context';

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export const commandGroups: CommandModule<GlobalArgs, {}>[] = [];
