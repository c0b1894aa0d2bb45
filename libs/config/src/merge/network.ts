import { parseCidr, type Cidr } from '../cidr';
import { parseAllowHost } from '../hostname';
import { mergeByKey } from '../merge-by-key';
import type { Smolfile } from '../smolfile/types';
import type { NetworkPolicy } from './types';

/** What `--outbound-localhost-only` allows, per the reference. */
export const LOCALHOST_CIDRS: readonly Cidr[] = [parseCidr('127.0.0.0/8'), parseCidr('::1')];

export interface CliNetworkOptions {
  net?: boolean;
  allowHosts?: string[];
  allowCidrs?: string[];
  outboundLocalhostOnly?: boolean;
}

/** Allow lists from both sources are merged; any allow list switches networking on. */
export function mergeNetwork(cli: CliNetworkOptions, smolfile?: Smolfile): NetworkPolicy {
  const allowHosts = mergeByKey(
    [smolfile?.network.allowHosts ?? [], (cli.allowHosts ?? []).map(parseAllowHost)],
    (h) => h,
  );
  const allowCidrs = mergeByKey(
    [
      smolfile?.network.allowCidrs ?? [],
      (cli.allowCidrs ?? []).map(parseCidr),
      cli.outboundLocalhostOnly === true ? LOCALHOST_CIDRS : [],
    ],
    (c) => c.cidr,
  );
  const enabled = cli.net === true || smolfile?.net === true || allowHosts.length > 0 || allowCidrs.length > 0;
  return { enabled, allowHosts, allowCidrs };
}
