import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs, JsonArgs } from '../../context';

export type PullArgs = GlobalArgs & JsonArgs & { image: string; platform?: string };

export const imagePullCommand: CommandModule<GlobalArgs, PullArgs> = {
  command: 'pull',
  describe: 'Download an image and prepare it for fast VM starts',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .option('image', { alias: 'I', type: 'string', demandOption: true, describe: 'OCI image reference' })
      .option('platform', {
        type: 'string',
        describe: 'Platform to pull from a multi-arch image (default: linux/<host arch>)',
      })
      .option('json', { type: 'boolean', default: false, describe: 'Print the result as JSON' })
      .example('$0 image pull --image python:3.12-alpine', 'Pull from Docker Hub')
      .example('$0 image pull -I 127.0.0.1:5000/test/busybox:1', 'Pull from a local registry (plain HTTP on loopback)')
      .example('$0 image pull -I alpine --platform linux/arm64', 'Pick another platform from an index'),
  handler: async (args) => (await import('./pull.handler')).runPull(args),
};
