// Public API of @smolvm/netpolicy: the userspace network gateway behind --net, --allow-host,
// --allow-cidr, --outbound-localhost-only and -p (see README.md for addresses and design).
export { startGateway, type GatewayOptions } from './start';
export {
  Gateway,
  DEFAULT_NETWORK,
  DEFAULT_LIMITS,
  type GuestNetworkConfig,
  type GuestNetworkOptions,
  type GatewayLimits,
  type GatewayStats,
  type DeniedAttempt,
  formatDenial,
} from './gateway';
export { EgressPolicy, type DroppedAddress, type PolicyInput, type PolicyOptions, type Verdict } from './policy';
export { listenPortForwards, PortForwards, type BoundPort } from './port-forward';
export {
  hostResolver,
  staticResolver,
  type UpstreamResolver,
  type ResolvedAddress,
  type HostResolverOptions,
} from './resolver';
