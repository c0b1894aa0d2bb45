import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../../context';

/** A single-value flag given twice (--cpus 1 --cpus 2) takes the last value, as in docker. */
function lastValue(value: string | string[]): string {
  return Array.isArray(value) ? value[value.length - 1] : value;
}

export interface RunArgs extends GlobalArgs {
  image?: string;
  env?: string[];
  workdir?: string;
  volume?: string[];
  init?: string[];
  interactive: boolean;
  tty: boolean;
  cpus?: string;
  memory?: string;
  smolfile?: string;
  driver?: string;
  cold: boolean;
  '--'?: Array<string | number>;
}

export const runCommand: CommandModule<GlobalArgs, RunArgs> = {
  command: 'run',
  describe: 'Run a command in a fresh, ephemeral micro-VM (everything is discarded when it exits)',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .parserConfiguration({ 'populate--': true })
      .usage('smolvm machine run [options] [-- COMMAND [ARG...]]\n\nRun a command in a fresh, ephemeral micro-VM. Without --image it runs the built-in bare image\n(busybox userland). The command\'s exit code becomes smolvm\'s exit code.')
      .option('image', { coerce: lastValue, alias: 'I', type: 'string', describe: 'OCI image to run (default: the built-in bare image)' })
      .option('env', { alias: 'e', type: 'string', array: true, describe: 'Environment variable KEY=VALUE (or KEY to copy it from the host); repeatable' })
      .option('workdir', { coerce: lastValue, alias: 'w', type: 'string', describe: 'Working directory in the guest' })
      .option('volume', { alias: 'v', type: 'string', array: true, describe: 'Mount a host directory: HOST:GUEST[:ro]; repeatable' })
      .option('init', { type: 'string', array: true, describe: 'Shell command to run before COMMAND (after [dev] init); repeatable' })
      .option('interactive', { alias: 'i', type: 'boolean', default: false, describe: 'Keep stdin open and send it to the command' })
      .option('tty', { alias: 't', type: 'boolean', default: false, describe: 'Allocate a pseudo-terminal (use with -i for a shell)' })
      .option('cpus', { coerce: lastValue, type: 'string', describe: 'vCPUs (default: Smolfile, else 4)' })
      .option('memory', { coerce: lastValue, type: 'string', describe: 'Memory, e.g. 512, 512M, 2G (default: Smolfile, else 8192 MiB)' })
      .option('smolfile', { coerce: lastValue, alias: 's', type: 'string', describe: 'Load the workload from a Smolfile (top level + [dev])' })
      .option('driver', { coerce: lastValue, type: 'string', describe: 'VM driver (default: SMOLVM_DRIVER, else the first usable one)' })
      .option('cold', { type: 'boolean', default: false, describe: 'Boot the VM instead of restoring the boot snapshot of its shape' })
      .example('$0 machine run -- echo hello', 'Run a command in the bare image')
      .example('$0 machine run -it', 'An interactive shell in the bare image')
      .example('$0 machine run --image python:3.12-alpine -- python3 -c "print(1)"', 'Run a command in an OCI image')
      .example('echo hi | $0 machine run -i -- cat', 'Pipe stdin into the guest')
      .example('$0 machine run -v ./data:/data:ro -- ls /data', 'Mount a host directory read-only')
      .example('$0 machine run -s Smolfile', 'Run the workload a Smolfile declares'),
  handler: async (args) => {
    process.exitCode = await (await import('./run.handler')).runRun(args);
  },
};
