import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs } from '../../context';
import { lastValue } from '../machine/workload-options';

export interface PackCreateArgs extends GlobalArgs {
  image?: string;
  output: string;
  smolfile?: string;
  fromVm?: string;
  fromSnapshot?: string;
  singleFile?: boolean;
  env?: string[];
  workdir?: string;
  cpus?: string;
  memory?: string;
  platform?: string;
  net?: boolean;
  allowHost?: string[];
  allowCidr?: string[];
  outboundLocalhostOnly?: boolean;
}

export const packCreateCommand: CommandModule<GlobalArgs, PackCreateArgs> = {
  command: 'create',
  describe: 'Pack an image (or a stopped machine) into an executable and its .smolmachine payload',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .usage(
        "smolvm pack create (--image IMAGE | -s Smolfile | --from-vm NAME | --from-snapshot ID) -o PATH [options]\n\nWrites PATH, an executable that runs the machine (`PATH run -- CMD`, `start`, `exec`, `stop`,\n`status`, `info`), and PATH.smolmachine, the payload: the guest kernel, the agent image, the\nimage's root filesystem and, with --from-vm, the machine's disks. With --from-snapshot it is a\nrunning machine (its RAM too: format version 2) that `smolvm machine create NAME --from PATH.smolmachine`\nresumes with its processes running. Hand both files to someone with QEMU. With --single-file the\npayload is appended to the executable instead.",
      )
      .option('image', {
        coerce: lastValue,
        alias: 'I',
        type: 'string',
        describe: "OCI image to pack (default: the Smolfile's image, else the bare image)",
      })
      .option('output', {
        coerce: lastValue,
        alias: 'o',
        type: 'string',
        demandOption: true,
        describe: 'The executable to write; the payload goes to PATH.smolmachine',
      })
      .option('smolfile', {
        coerce: lastValue,
        alias: 's',
        type: 'string',
        describe: 'Take the workload from a Smolfile (top level + [artifact]; [dev] is not packed)',
      })
      .option('from-vm', {
        coerce: lastValue,
        type: 'string',
        describe: 'Pack a stopped machine: its image plus what exec wrote to its overlay and /workspace',
      })
      .option('from-snapshot', {
        coerce: lastValue,
        type: 'string',
        describe:
          'Pack a snapshot of a running machine (MACHINE:TAG from `machine snapshot ls`): disks, RAM and device state, which carry everything in its memory',
      })
      .option('single-file', {
        type: 'boolean',
        default: false,
        describe: 'Append the payload to the executable (one file) instead of writing PATH.smolmachine',
      })
      .option('env', {
        alias: 'e',
        type: 'string',
        array: true,
        describe: 'Environment variable KEY=VALUE for the packed machine; repeatable',
      })
      .option('workdir', { coerce: lastValue, alias: 'w', type: 'string', describe: 'Working directory in the guest' })
      .option('cpus', {
        coerce: lastValue,
        type: 'string',
        describe: 'vCPUs of the packed machine (default: [artifact], Smolfile, else 4)',
      })
      .option('memory', {
        coerce: lastValue,
        type: 'string',
        describe: 'Memory, e.g. 512M, 2G (default: [artifact], Smolfile, else 8192 MiB)',
      })
      .option('platform', {
        coerce: lastValue,
        type: 'string',
        describe: "Guest OCI platform of the image (default: [artifact] oci_platform, else the host's)",
      })
      .option('net', { type: 'boolean', describe: 'The packed machine has outbound networking' })
      .option('allow-host', {
        type: 'string',
        array: true,
        describe: 'Egress only to this hostname (implies --net); repeatable',
      })
      .option('allow-cidr', {
        type: 'string',
        array: true,
        describe: 'Egress only to this CIDR (implies --net); repeatable',
      })
      .option('outbound-localhost-only', {
        type: 'boolean',
        describe: "Egress only to the host's loopback (implies --net)",
      })
      .example(
        '$0 pack create --image python:3.12-alpine -o ./my-python',
        'Writes ./my-python and ./my-python.smolmachine',
      )
      .example('./my-python run -- python3 -c "print(1)"', 'Run the packed machine')
      .example('$0 pack create -s Smolfile -o ./app --single-file', "One file, with the Smolfile's [artifact] profile")
      .example('$0 pack create --from-vm dev -o ./dev-box', 'A stopped machine with what was installed in it')
      .example(
        '$0 pack create --from-snapshot web:ready -o ./web && smolvm machine create web2 --from ./web.smolmachine',
        'A running machine, resumed elsewhere with its processes running',
      ),
  handler: async (args) => (await import('./create.handler')).runPackCreate(args),
};
