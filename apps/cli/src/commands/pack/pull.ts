import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs, JsonArgs } from '../../context';
import { lastValue } from '../machine/workload-options';

export type PackPullArgs = GlobalArgs & JsonArgs & { reference: string; output?: string; platform?: string };

export const packPullCommand: CommandModule<GlobalArgs, PackPullArgs> = {
  command: 'pull <reference>',
  describe: 'Pull a .smolmachine from an OCI registry',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .positional('reference', {
        type: 'string',
        demandOption: true,
        describe: 'Artifact reference: [REGISTRY/][NAMESPACE/]NAME[:TAG|@sha256:DIGEST]',
      })
      .option('output', {
        alias: 'o',
        coerce: lastValue,
        type: 'string',
        describe: 'Write the pack here (default: the pack cache, keyed by digest)',
      })
      .option('platform', {
        coerce: lastValue,
        type: 'string',
        describe: 'Guest platform to pull (default: linux/<host arch>)',
      })
      .option('json', { type: 'boolean', default: false, describe: 'Print the result as JSON' })
      .usage(
        "smolvm pack pull REFERENCE [-o PATH]\n\nDownloads the pack for this host's guest platform, verifies every section against its digest\nand writes the .smolmachine. Prints its path. `machine create --from REFERENCE` and\n`pack run --from REFERENCE` pull the same way.",
      )
      .example('$0 pack pull registry.example.com/team/my-app:v1 -o ./my-app.smolmachine', 'Pull into a file')
      .example('$0 pack pull 127.0.0.1:5000/my-app@sha256:<64 hex>', 'Pull an exact version into the cache'),
  handler: async (args) => (await import('./pull.handler')).runPackPull(args),
};
