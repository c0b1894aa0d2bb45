import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../../context';
import { lastValue, terminalOptions } from '../machine/workload-options';

export interface PackRunArgs extends GlobalArgs {
  sidecar?: string;
  from?: string;
  interactive: boolean;
  tty: boolean;
  cold: boolean;
  '--'?: Array<string | number>;
}

export const packRunCommand: CommandModule<GlobalArgs, PackRunArgs> = {
  command: 'run',
  describe: 'Run a .smolmachine in a fresh, ephemeral micro-VM',
  builder: (yargs: Argv<GlobalArgs>) =>
    terminalOptions(yargs)
      .parserConfiguration({ 'populate--': true })
      .usage(
        "smolvm pack run (--sidecar PATH | --from REFERENCE) [-i] [-t] [-- COMMAND [ARG...]]\n\nRuns the packed machine once, like `machine run`: COMMAND replaces the pack's command, its exit\ncode becomes smolvm's, and nothing is kept. PATH is a .smolmachine or a --single-file executable;\nREFERENCE is pulled from its registry first (into the pack cache, once per digest).\n\nA pack of a running machine (pack create --from-snapshot) is resumed instead: a temporary\nmachine is made from its snapshot (imported once per pack), COMMAND runs in it by exec (the\npack's command without one), and the machine is removed with its disks when COMMAND ends, on\nerrors and on Ctrl-C/SIGTERM.",
      )
      .option('sidecar', {
        coerce: lastValue,
        type: 'string',
        describe: 'The .smolmachine (or single-file executable) to run',
      })
      .option('from', {
        coerce: lastValue,
        type: 'string',
        describe: 'A pack in a registry (artifact reference) or a pack file, to run',
      })
      .option('cold', {
        type: 'boolean',
        default: false,
        describe: 'Boot instead of restoring the boot snapshot of its shape',
      })
      .example('$0 pack run --sidecar ./my-app.smolmachine', "Run the pack's own command")
      .example('$0 pack run --sidecar ./my-app.smolmachine -it -- /bin/sh', 'A shell in the packed machine')
      .example(
        '$0 pack run --sidecar ./web.smolmachine -- wget -qO- http://127.0.0.1:8080/',
        'Resume a packed running machine, run one command in it, remove it',
      )
      .example(
        '$0 pack run --from registry.example.com/team/my-app:v1 -- python3 -V',
        'Pull a pushed pack (once) and run it',
      ),
  handler: async (args) => {
    process.exitCode = await (await import('./run.handler')).runPackRun(args);
  },
};
