import type { Argv, CommandModule } from 'yargs';
import type { GlobalArgs, JsonArgs } from '../../context';

export type ForkArgs = GlobalArgs &
  JsonArgs & {
    name: string;
    new: string;
    count?: number;
    net?: boolean;
    allowHost?: string[];
    allowCidr?: string[];
    port?: string[];
  };

export const forkCommand: CommandModule<GlobalArgs, ForkArgs> = {
  command: 'fork <name> <new>',
  describe: 'Snapshot a machine and start copies of it that resume where it was',
  builder: (yargs: Argv<GlobalArgs>) =>
    yargs
      .positional('name', {
        type: 'string',
        demandOption: true,
        describe: 'The machine to copy (running or stopped), or a snapshot MACHINE:TAG to start copies of',
      })
      .positional('new', {
        type: 'string',
        demandOption: true,
        describe: 'Name of the copy (with -n: NEW-1 .. NEW-COUNT)',
      })
      .option('count', { alias: 'n', type: 'number', describe: 'Make COUNT copies, NEW-1 .. NEW-COUNT' })
      .option('net', {
        type: 'boolean',
        describe: "Outbound networking for the copies (they do not inherit the source's policy)",
      })
      .option('allow-cidr', {
        type: 'string',
        array: true,
        describe: 'Allow outbound traffic to this CIDR only (implies --net); repeatable',
      })
      .option('allow-host', {
        type: 'string',
        array: true,
        describe: 'Allow outbound traffic to this hostname only (implies --net); repeatable',
      })
      .option('port', {
        alias: 'p',
        type: 'string',
        array: true,
        describe: 'Forward host 127.0.0.1:HOST to guest GUEST (one copy only): HOST:GUEST; repeatable',
      })
      .option('json', { type: 'boolean', default: false, describe: 'Print the snapshot and the copies as JSON' })
      .usage(
        "smolvm machine fork NAME|MACHINE:TAG NEW [-n COUNT] [-p HOST:GUEST] [--net]\n\nTakes a snapshot of NAME (kept: `smolvm machine snapshot ls`), then creates and starts each copy\nfrom it: its processes keep running, with its own hostname, RNG seed, clock, network policy and\nports (none of the source's host ports). Prints the names of the copies.\nNAME may also be a snapshot MACHINE:TAG: its copies are started from it, no new snapshot taken.",
      )
      .example('$0 machine fork dev dev2 -p 8081:80', 'One copy of "dev", its port 80 on host port 8081')
      .example('$0 machine fork dev worker -n 5', 'Five copies: worker-1 .. worker-5')
      .example('$0 machine fork dev:ready w2', 'A copy of snapshot dev:ready, started (no new snapshot)'),
  handler: async (args) => (await import('./snapshot.handler')).runFork(args),
};
