import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../../context';
import { lastValue, terminalOptions, workloadOptions, type WorkloadArgs } from './workload-options';

export interface RunArgs extends WorkloadArgs {
  interactive: boolean;
  tty: boolean;
  driver?: string;
  cold: boolean;
  detach: boolean;
  name?: string;
  '--'?: Array<string | number>;
}

export const runCommand: CommandModule<GlobalArgs, RunArgs> = {
  command: 'run',
  describe: 'Run a command in a fresh, ephemeral micro-VM (everything is discarded when it exits)',
  builder: (yargs: Argv<GlobalArgs>) =>
    terminalOptions(workloadOptions(yargs, 'to run'))
      // What follows -- goes to the guest as written (yargs would turn 0x10 into 16).
      .parserConfiguration({ 'populate--': true, 'parse-positional-numbers': false })
      .usage(
        "smolvm machine run [options] [-- COMMAND [ARG...]]\nsmolvm machine run -d [--name NAME] [options]\n\nRun a command in a fresh, ephemeral micro-VM. Without --image it is a bare VM on the base image\n(Debian 12 with apt, unless base_image in config.toml or SMOLVM_BASE_IMAGE names another). The command's exit code becomes smolvm's exit code.\n\nWith -d the VM stays up in the background instead: smolvm prints its machine name and returns\nonce the agent is ready and [dev] init ran; `machine ls` lists it, `machine exec --name NAME`\nruns commands in it and `machine stop --name NAME` removes it with its disks. It takes no\ncommand (run one with `machine exec`), nor -i/-t; the Smolfile's cmd is not run.",
      )
      .option('init', {
        type: 'string',
        array: true,
        describe: 'Shell command to run before COMMAND (after [dev] init; with -d, once the VM is up); repeatable',
      })
      .option('driver', {
        coerce: lastValue,
        type: 'string',
        describe: 'VM driver (default: SMOLVM_DRIVER, else the first usable one)',
      })
      .option('cold', {
        type: 'boolean',
        default: false,
        describe: 'Boot the VM instead of restoring the boot snapshot of its shape',
      })
      .option('detach', {
        alias: 'd',
        type: 'boolean',
        default: false,
        describe: 'Leave the VM running in the background as an ephemeral machine; print its name',
      })
      .option('name', {
        alias: 'n',
        coerce: lastValue,
        type: 'string',
        describe: 'Name of the -d machine (default: run-XXXXXXXX, generated)',
      })
      .example('$0 machine run -- echo hello', 'Run a command in a bare VM (the base image)')
      .example('$0 machine run -it', 'An interactive shell (bash) in a bare VM')
      .example('$0 machine run --image python:3.12-alpine -- python3 -c "print(1)"', 'Run a command in an OCI image')
      .example('echo hi | $0 machine run -i -- cat', 'Pipe stdin into the guest')
      .example('$0 machine run -v ./data:/data:ro -- ls /data', 'Mount a host directory read-only')
      .example(
        '$0 machine run --net --image alpine -- wget -qO- http://example.com',
        'Outbound networking (off by default)',
      )
      .example('$0 machine run --allow-host api.example.com -- sh', 'Only that name resolves and connects')
      .example('$0 machine run -p 8080:80 -- httpd -f -p 80', 'Serve guest port 80 on the host at 127.0.0.1:8080')
      .example(
        '$0 machine run --ssh-agent --net --image alpine/git -- git ls-remote git@host:org/repo',
        "Use the host's SSH agent; keys stay on the host",
      )
      .example('$0 machine run -s Smolfile', 'Run the workload a Smolfile declares')
      .example('$0 machine run -d -s Smolfile', 'Bare VM with [dev] init setup, detached: prints its name')
      .example(
        '$0 machine run -d --name scratch && $0 machine exec --name scratch -- uname -a',
        'A named detached VM; `machine stop --name scratch` removes it',
      ),
  handler: async (args) => {
    if (args.detach) return (await import('./run-detached.handler')).runDetached(args);
    process.exitCode = await (await import('./run.handler')).runRun(args);
  },
};
