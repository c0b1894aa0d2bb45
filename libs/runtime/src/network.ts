// A VM's network (docs/architecture.md#network): the -p host ports are bound first (a busy port fails before boot),
// then our gateway listens on the unix socket QEMU's `-netdev stream` connects to; once the agent
// is up it configures the guest statically from the gateway's addresses. Also the host end of
// --ssh-agent.
import fs from 'node:fs';
import net from 'node:net';
import { UsageError } from '@smolvm/common';
import type { PortMapping } from '@smolvm/config';
import { agentRequestName, filterAgentConnection } from './ssh-agent-filter';
import type { RelayStreams, SetupSpec } from '@smolvm/agent-protocol';
import {
  DEFAULT_NETWORK,
  hostResolver,
  listenPortForwards,
  startGateway,
  staticResolver,
  type DeniedAttempt,
  type Gateway,
  type PortForwards,
  type UpstreamResolver,
} from '@smolvm/netpolicy';

export interface NetworkOptions {
  /**
   * Outbound traffic allowed (--net or an allow list). False: the NIC only serves -p forwards;
   * every outbound connection is refused and every name is REFUSED (never asked upstream).
   */
  outbound: boolean;
  /** Empty with `outbound`: unrestricted (--net). */
  allowHosts?: string[];
  /** "10.0.0.0/8", "::1"...; --outbound-localhost-only arrives here as 127.0.0.0/8 + ::1. */
  allowCidrs?: string[];
  ports?: PortMapping[];
  /** Each refused connection, datagram or name (for the run's --debug output or the machine log). */
  onDenied?: (attempt: DeniedAttempt) => void;
  onWarning?: (message: string) => void;
  /** Upstream DNS. Default: SMOLVM_DNS_SERVERS (comma-separated ip[:port]) if set, else the host's resolver. */
  resolver?: UpstreamResolver;
}

export interface PreparedNetwork {
  mac: string;
  /** Starts the gateway listening on `socketPath` (before QEMU starts). */
  start(socketPath: string): Promise<Gateway>;
  /** The agent's part: static address, route and resolv.conf. */
  setup(gateway: Gateway): Pick<SetupSpec, 'network' | 'resolvConf'>;
  /** Releases the host ports. */
  close(): Promise<void>;
}

/** Where the guest's SSH agent socket lives (in the guest root). */
export const GUEST_SSH_AUTH_SOCK = '/run/smolvm-ssh/agent.sock';

export async function prepareNetwork(options: NetworkOptions, env: NodeJS.ProcessEnv): Promise<PreparedNetwork> {
  const forwards: PortForwards | undefined = options.ports?.length
    ? await listenPortForwards(options.ports)
    : undefined;
  const servers = env.SMOLVM_DNS_SERVERS?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  // No outbound: a deny-all policy and a resolver that knows no names, so neither connections
  // nor DNS leave the host.
  const policy = options.outbound
    ? { allowHosts: options.allowHosts ?? [], allowCidrs: options.allowCidrs ?? [] }
    : { denyAll: true };
  const resolver = !options.outbound
    ? staticResolver({})
    : (options.resolver ?? hostResolver(servers?.length ? { servers } : {}));
  return {
    mac: DEFAULT_NETWORK.guestMac,
    start: (socketPath) =>
      startGateway({
        policy,
        socketPath,
        resolver,
        portForwards: forwards,
        onDenied: options.onDenied,
        onWarning: options.onWarning,
      }),
    setup: (gateway) => {
      const c = gateway.guestConfig;
      return {
        network: { ip: c.ip, prefix: c.prefix, gateway: c.gateway, mtu: c.mtu, mac: c.mac },
        resolvConf: c.dns.map((d) => `nameserver ${d}\n`).join(''),
      };
    },
    close: async () => {
      await forwards?.close();
    },
  };
}

/** Guest connections to the SSH agent served at once; more are closed as they arrive. */
export const SSH_AGENT_MAX_CONNECTIONS = 8;

/**
 * Checks the host's agent before boot and returns the relay that connects guest clients to it
 * through the request filter (ssh-agent-filter.ts). A guest can open connections without end;
 * each one holds a connection to the host's agent, hence the cap (ssh and git use one at a time).
 */
export function sshAgentSetup(
  env: NodeJS.ProcessEnv,
  /** Each request the filter refused, named ("lock (22)"): for --debug or the machine log. */
  onRefused?: (request: string) => void,
): { guestSocket: string; relay: (io: RelayStreams) => void } {
  const hostSocket = env.SSH_AUTH_SOCK;
  const remedy =
    'start an agent and add your key (eval "$(ssh-agent)" && ssh-add), or run without --ssh-agent / [auth] ssh_agent';
  if (!hostSocket)
    throw new UsageError('--ssh-agent needs an SSH agent on the host, and SSH_AUTH_SOCK is not set', { remedy });
  if (!fs.statSync(hostSocket, { throwIfNoEntry: false })?.isSocket()) {
    throw new UsageError(`SSH_AUTH_SOCK=${hostSocket} is not a unix socket (is the agent still running?)`, { remedy });
  }
  let open = 0;
  return {
    guestSocket: GUEST_SSH_AUTH_SOCK,
    relay: (io) => {
      if (open >= SSH_AGENT_MAX_CONNECTIONS) {
        io.input.destroy();
        io.output.end();
        return;
      }
      open++;
      // The host agent gone (or never reached): the guest client sees end of stream.
      filterAgentConnection(io, net.connect(hostSocket), {
        onClose: () => open--,
        ...(onRefused ? { onRefused: (type: number) => onRefused(agentRequestName(type)) } : {}),
      });
    },
  };
}
