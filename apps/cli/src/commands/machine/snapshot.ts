import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs, JsonArgs } from '../../context';
import { lastValue } from './workload-options';

export type SnapshotCreateArgs = GlobalArgs & JsonArgs & { name: string; tag?: string };
export type SnapshotLsArgs = GlobalArgs & JsonArgs;
export type SnapshotRmArgs = GlobalArgs & { id: string };

export const snapshotCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'snapshot',
  describe: 'Save a machine (running or stopped) to start copies of it: create, ls, rm',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .command<SnapshotCreateArgs>({
        command: 'create <name>',
        describe: 'Snapshot a machine: its disks and, if it runs, its memory and processes (paused only for the copy)',
        builder: (y) =>
          y
            .positional('name', { type: 'string', demandOption: true, describe: 'Machine name' })
            .option('tag', {
              coerce: lastValue,
              type: 'string',
              describe: 'Tag of the snapshot (default: the next free number, 1, 2, ...)',
            })
            .option('json', { type: 'boolean', default: false, describe: 'Print the snapshot as JSON' })
            .usage(
              'smolvm machine snapshot create NAME [--tag TAG] [--json]\n\nPrints the snapshot id, NAME:TAG. Start copies with `smolvm machine create NEW --from-snapshot ID`\nor `smolvm machine fork`.',
            )
            .example('$0 machine snapshot create dev', 'Snapshot "dev" as dev:1 (then dev:2, ...)')
            .example('$0 machine snapshot create dev --tag warm', 'Snapshot "dev" as dev:warm'),
        handler: async (args) => (await import('./snapshot.handler')).runSnapshotCreate(args),
      })
      .command<SnapshotLsArgs>({
        command: 'ls',
        describe: 'List snapshots with their source, size and the machines built on them',
        builder: (y) =>
          y
            .option('json', { type: 'boolean', default: false, describe: 'Print JSON' })
            .example('$0 machine snapshot ls --json', 'Snapshots as JSON'),
        handler: async (args) => (await import('./snapshot.handler')).runSnapshotLs(args),
      })
      .command<SnapshotRmArgs>({
        command: 'rm <id>',
        describe: 'Remove a snapshot (refused while machines are built on it)',
        builder: (y) =>
          y
            .positional('id', { type: 'string', demandOption: true, describe: 'Snapshot id, NAME:TAG' })
            .example('$0 machine snapshot rm dev:1', 'Remove snapshot dev:1'),
        handler: async (args) => (await import('./snapshot.handler')).runSnapshotRm(args),
      })
      .demandCommand(1, 'Name a snapshot command: create, ls or rm'),
  handler: () => undefined,
};
