import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../../context';
import { lastValue, terminalOptions } from './workload-options';

export interface ExecArgs extends GlobalArgs {
  name: string;
  interactive: boolean;
  tty: boolean;
  env?: string[];
  workdir?: string;
  stream: boolean;
  '--'?: Array<string | number>;
}

export const execCommand: CommandModule<GlobalArgs, ExecArgs> = {
  command: 'exec',
  describe: 'Run a command in a running machine (filesystem changes persist)',
  builder: (yargs: Argv<GlobalArgs>) =>
    terminalOptions(yargs)
      // What follows -- goes to the guest as written (yargs would turn 0x10 into 16).
      .parserConfiguration({ 'populate--': true, 'parse-positional-numbers': false })
      .usage(
        "smolvm machine exec [--name NAME] [options] -- COMMAND [ARG...]\n\nRun a command in a running persistent machine. Its exit code becomes smolvm's exit code.\nWhat it writes (outside /tmp) survives later execs and stop/start.",
      )
      .option('name', { alias: 'n', type: 'string', default: 'default', coerce: lastValue, describe: 'Machine name' })
      .option('env', {
        alias: 'e',
        type: 'string',
        array: true,
        describe: 'Environment variable KEY=VALUE (or KEY to copy it from the host); repeatable',
      })
      .option('workdir', { alias: 'w', type: 'string', coerce: lastValue, describe: 'Working directory in the guest' })
      .option('stream', {
        type: 'boolean',
        default: false,
        describe: 'Stream output as it arrives (exec always does; accepted for scripts written for the API)',
      })
      .example('$0 machine exec --name dev -- apk add python3', 'Install a package; it is still there after stop/start')
      .example('$0 machine exec --name dev -it -- /bin/sh', 'An interactive shell')
      .example('$0 machine exec --stream --name dev -- python3 train.py', 'Output as it is produced'),
  handler: async (args) => {
    process.exitCode = await (await import('./exec.handler')).runExec(args);
  },
};
