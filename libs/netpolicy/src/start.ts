// The one call the runtime makes: policy + resolver + gateway (+ port forwards), ready before
// the VM starts.
import { DEFAULT_NETWORK, Gateway, type DeniedAttempt, type GatewayLimits, type GuestNetworkOptions } from './gateway';
import { EgressPolicy, type PolicyInput } from './policy';
import type { PortForwards } from './port-forward';
import { hostResolver, type UpstreamResolver } from './resolver';

export interface GatewayOptions {
  /** Empty (or no) allow lists: full outbound (`--net`). */
  policy: PolicyInput;
  /** Unix socket to listen on for QEMU's `-netdev stream` connection. Else call attach(). */
  socketPath?: string;
  /** From listenPortForwards(), bound before boot. */
  portForwards?: PortForwards;
  /** Upstream DNS. Default: the host's resolver. */
  resolver?: UpstreamResolver;
  network?: GuestNetworkOptions;
  limits?: Partial<GatewayLimits>;
  onDenied?: (attempt: DeniedAttempt) => void;
  onWarning?: (message: string) => void;
}

/** Resolves the allowed hosts, builds the gateway and (with socketPath) starts listening. */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const resolver = options.resolver ?? hostResolver();
  const guestNetwork = {
    address: options.network?.gateway ?? DEFAULT_NETWORK.gateway,
    prefix: options.network?.prefix ?? DEFAULT_NETWORK.prefix,
  };
  const policy = await EgressPolicy.create(options.policy, resolver, { onWarning: options.onWarning, guestNetwork });
  const gateway = new Gateway({
    policy,
    resolver,
    network: options.network,
    limits: options.limits,
    onDenied: options.onDenied,
    onWarning: options.onWarning,
  });
  try {
    if (options.socketPath) await gateway.listen(options.socketPath);
  } catch (err) {
    await gateway.close();
    throw err;
  }
  options.portForwards?.attach(gateway);
  return gateway;
}
