import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs, JsonArgs } from '../../context';

export type PackPushArgs = GlobalArgs & JsonArgs & { path: string; reference: string };

export const packPushCommand: CommandModule<GlobalArgs, PackPushArgs> = {
  command: 'push <path> <reference>',
  describe: 'Push a .smolmachine to an OCI registry',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .positional('path', {
        type: 'string',
        demandOption: true,
        describe: 'The .smolmachine (or --single-file executable) to push',
      })
      .positional('reference', {
        type: 'string',
        demandOption: true,
        describe: 'Artifact reference: [REGISTRY/][NAMESPACE/]NAME[:TAG]',
      })
      .option('json', { type: 'boolean', default: false, describe: 'Print the result as JSON' })
      .usage(
        'smolvm pack push PATH REFERENCE\n\nUploads the pack as an OCI artifact: its manifest as the config, one layer per section, under an\nindex keyed by the guest platform (other platforms under the tag are kept). Sections the registry\nalready has (the kernel and agent of every pack) are not sent again. Names without a registry go\nto registry.smolmachines.com, or to [artifacts] registry in registries.toml.',
      )
      .example('$0 pack push ./my-app.smolmachine registry.example.com/team/my-app:v1', 'Push to a registry')
      .example(
        '$0 pack push ./my-app.smolmachine 127.0.0.1:5000/my-app:latest',
        'Push to a local registry (plain HTTP on loopback)',
      )
      .example('$0 pack push ./my-app.smolmachine binsquare/custom:v1', 'Push to the default artifact registry'),
  handler: async (args) => (await import('./push.handler')).runPackPush(args),
};
