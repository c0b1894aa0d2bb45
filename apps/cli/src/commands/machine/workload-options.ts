// Flags shared by `machine run` and `machine create`: what the workload is and its resources.
import type { Argv } from 'yargs';
import type { CliRunOptions, MergedRunOptions } from '@smolvm/config';
import type { NetworkOptions } from '@smolvm/runtime';
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
  net?: boolean;
  allowCidr?: string[];
  allowHost?: string[];
  outboundLocalhostOnly?: boolean;
  port?: string[];
  sshAgent?: boolean;
}

export interface TerminalArgs {
  interactive: boolean;
  tty: boolean;
}

/** -i/-t, as `machine run`, `machine exec` and `pack run` take them. */
export function terminalOptions<T>(yargs: Argv<T>): Argv<T & TerminalArgs> {
  return yargs
    .option('interactive', {
      alias: 'i',
      type: 'boolean',
      default: false,
      describe: 'Keep stdin open and send it to the command',
    })
    .option('tty', {
      alias: 't',
      type: 'boolean',
      default: false,
      describe: 'Allocate a pseudo-terminal (use with -i for a shell)',
    });
}

export function workloadOptions<T extends GlobalArgs>(yargs: Argv<T>, what: string): Argv<T & WorkloadArgs> {
  return yargs
    .option('image', {
      coerce: lastValue,
      alias: 'I',
      type: 'string',
      describe: `OCI image ${what} (default: a bare VM on the base image)`,
    })
    .option('env', {
      alias: 'e',
      type: 'string',
      array: true,
      describe: 'Environment variable KEY=VALUE (or KEY to copy it from the host); repeatable',
    })
    .option('workdir', { coerce: lastValue, alias: 'w', type: 'string', describe: 'Working directory in the guest' })
    .option('volume', {
      alias: 'v',
      type: 'string',
      array: true,
      describe: 'Mount a host directory: HOST:GUEST[:ro]; repeatable',
    })
    .option('cpus', { coerce: lastValue, type: 'string', describe: 'vCPUs (default: Smolfile, else 4)' })
    .option('memory', {
      coerce: lastValue,
      type: 'string',
      describe: 'Memory, e.g. 512, 512M, 2G (default: Smolfile, else 8192 MiB)',
    })
    .option('smolfile', {
      coerce: lastValue,
      alias: 's',
      type: 'string',
      describe: 'Load the workload from a Smolfile (top level + [dev])',
    })
    .option('net', { type: 'boolean', describe: 'Enable outbound networking (off by default: no NIC at all)' })
    .option('allow-cidr', {
      type: 'string',
      array: true,
      describe: 'Allow outbound traffic to this CIDR or address only (implies --net); repeatable',
    })
    .option('allow-host', {
      type: 'string',
      array: true,
      describe: 'Allow outbound traffic to this hostname only, resolved at VM start (implies --net); repeatable',
    })
    .option('outbound-localhost-only', {
      type: 'boolean',
      describe: "Allow outbound traffic only to the host's loopback, reached at 192.168.127.1 (implies --net)",
    })
    .option('port', {
      alias: 'p',
      type: 'string',
      array: true,
      describe: 'Forward host 127.0.0.1:HOST to guest port GUEST: HOST:GUEST or PORT; repeatable',
    })
    .option('ssh-agent', {
      type: 'boolean',
      describe: "Forward the host's SSH agent ($SSH_AUTH_SOCK) into the VM; keys stay on the host",
    }) as Argv<T & WorkloadArgs>;
}

/** The network and SSH agent flags in the form @smolvm/config merges (with the Smolfile). */
export function networkFlags(
  args: WorkloadArgs,
): Pick<CliRunOptions, 'net' | 'allowCidrs' | 'allowHosts' | 'outboundLocalhostOnly' | 'ports' | 'sshAgent'> {
  return {
    net: args.net,
    allowCidrs: args.allowCidr,
    allowHosts: args.allowHost,
    outboundLocalhostOnly: args.outboundLocalhostOnly,
    ports: args.port,
    sshAgent: args.sshAgent,
  };
}

/** The VM's NIC, if the merged options ask for one (any network flag or a port forward). */
export function vmNetwork(
  merged: Pick<MergedRunOptions, 'network' | 'ports'>,
  onDenied?: NetworkOptions['onDenied'],
  onWarning?: NetworkOptions['onWarning'],
): NetworkOptions | undefined {
  if (!merged.network.enabled && merged.ports.length === 0) return undefined;
  return {
    outbound: merged.network.enabled,
    allowHosts: merged.network.allowHosts,
    allowCidrs: merged.network.allowCidrs.map((c) => c.cidr),
    ports: merged.ports,
    ...(onDenied ? { onDenied } : {}),
    ...(onWarning ? { onWarning } : {}),
  };
}
