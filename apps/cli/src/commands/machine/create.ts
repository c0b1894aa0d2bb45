import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../../context';
import { lastValue, workloadOptions, type WorkloadArgs } from './workload-options';

export interface CreateArgs extends WorkloadArgs {
  name: string;
  storage?: string;
  overlay?: string;
  from?: string;
  fromSnapshot?: string;
}

export const createCommand: CommandModule<GlobalArgs, CreateArgs> = {
  command: 'create <name>',
  describe: 'Create a persistent machine (its disks keep what exec writes across stop/start)',
  builder: (yargs: Argv<GlobalArgs>) =>
    workloadOptions(
      yargs.positional('name', {
        type: 'string',
        demandOption: true,
        describe: 'Machine name (lowercase letters, digits, dashes)',
      }),
      'the machine is based on',
    )
      .usage(
        'smolvm machine create NAME [options]\n\nCreate a persistent machine: a root filesystem overlay disk (package installs, edits) and a\nstorage disk for /workspace, both sparse. Start it with `smolvm machine start --name NAME`.',
      )
      .option('init', {
        type: 'string',
        array: true,
        describe: 'Shell command to run on every start (after [dev] init); repeatable',
      })
      .option('storage', {
        coerce: lastValue,
        type: 'string',
        describe: 'Storage disk (/workspace) in GiB (default: Smolfile, else 20)',
      })
      .option('from', {
        coerce: lastValue,
        type: 'string',
        describe:
          "Boot from a packed artifact (FILE.smolmachine from `pack create`, or a pushed pack's REFERENCE, pulled once): its image, settings and disks, no image pull",
      })
      .option('from-snapshot', {
        coerce: lastValue,
        type: 'string',
        describe:
          'A copy of a machine snapshot (NAME:TAG from `machine snapshot ls`): its settings and disks (copy-on-write), resuming its processes on first start; only the network flags apply',
      })
      .option('overlay', {
        coerce: lastValue,
        type: 'string',
        describe: 'Overlay disk (root filesystem changes) in GiB (default: Smolfile, else 2)',
      })
      .example('$0 machine create dev', 'A bare machine named "dev" (on the base image: Debian 12 with apt)')
      .example('$0 machine create web --image python:3.12-alpine --cpus 2 --memory 2G', 'A machine based on an image')
      .example(
        '$0 machine create my-vm --from ./my-app.smolmachine',
        'A machine from a packed artifact (no image pull)',
      )
      .example(
        '$0 machine create my-vm --from registry.example.com/team/my-app:v1',
        'The same from a pack pushed with `pack push`',
      )
      .example(
        '$0 machine create copy --from-snapshot dev:1 -p 8081:80',
        'A copy of snapshot dev:1 with its own port forward',
      )
      .example('$0 machine create app -s Smolfile', 'Settings, init commands and [health] from a Smolfile'),
  handler: async (args) => (await import('./create.handler')).runCreate(args),
};
