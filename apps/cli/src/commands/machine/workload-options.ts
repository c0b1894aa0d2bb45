// Flags shared by `machine run` and `machine create`: what the workload is and its resources.
import type { Argv } from 'yargs';
import { UsageError } from '@smolvm/common';
import type { MergedRunOptions } from '@smolvm/config';
import type { GlobalArgs } from '../../context';

/** A single-value flag given twice (--cpus 1 --cpus 2) takes the last value, as in docker. */
export function lastValue(value: string | string[]): string {
  return Array.isArray(value) ? value[value.length - 1] : value;
}

export interface WorkloadArgs extends GlobalArgs {
  image?: string;
  env?: string[];
  workdir?: string;
  volume?: string[];
  init?: string[];
  cpus?: string;
  memory?: string;
  smolfile?: string;
}

export function workloadOptions<T extends GlobalArgs>(yargs: Argv<T>, what: string): Argv<T & WorkloadArgs> {
  return yargs
    .option('image', { coerce: lastValue, alias: 'I', type: 'string', describe: `OCI image ${what} (default: the built-in bare image)` })
    .option('env', { alias: 'e', type: 'string', array: true, describe: 'Environment variable KEY=VALUE (or KEY to copy it from the host); repeatable' })
    .option('workdir', { coerce: lastValue, alias: 'w', type: 'string', describe: 'Working directory in the guest' })
    .option('volume', { alias: 'v', type: 'string', array: true, describe: 'Mount a host directory: HOST:GUEST[:ro]; repeatable' })
    .option('cpus', { coerce: lastValue, type: 'string', describe: 'vCPUs (default: Smolfile, else 4)' })
    .option('memory', { coerce: lastValue, type: 'string', describe: 'Memory, e.g. 512, 512M, 2G (default: Smolfile, else 8192 MiB)' })
    .option('smolfile', { coerce: lastValue, alias: 's', type: 'string', describe: 'Load the workload from a Smolfile (top level + [dev])' }) as Argv<T & WorkloadArgs>;
}

/** Features the Smolfile may ask for that this build cannot honour: refuse rather than ignore. */
export function refuseUnsupported(merged: MergedRunOptions): void {
  if (merged.network.enabled || merged.ports.length > 0) {
    throw new UsageError('networking (net, [network], [dev] ports) is not available in this smolvm yet', {
      remedy: 'remove those keys from the Smolfile: VMs run without a network',
    });
  }
  if (merged.sshAgent) {
    throw new UsageError('SSH agent forwarding ([auth] ssh_agent) is not available in this smolvm yet', { remedy: 'remove ssh_agent from the Smolfile' });
  }
}
