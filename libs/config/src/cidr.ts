import { formatIPv4, formatIPv6, maskBytes, parseIPv4, parseIPv6 } from './ip';
import { invalid } from './invalid';

export interface Cidr {
  family: 4 | 6;
  /** Canonical network address (RFC 5952 for IPv6). */
  address: string;
  prefix: number;
  /** Canonical `address/prefix`. */
  cidr: string;
}

const REMEDY = 'write an IPv4 or IPv6 network as ADDRESS/PREFIX, e.g. 10.0.0.0/8 or fd00::/8, or a single address';

/**
 * Parses an egress CIDR. A bare address means that one host (/32 or /128). An address with
 * host bits set ("10.1.2.3/8") is refused and the intended network is suggested: in an allow
 * list, silently widening "10.1.2.3/8" to all of 10/8 could grant far more than was meant.
 */
export function parseCidr(spec: string): Cidr {
  const slash = spec.indexOf('/');
  const addressText = slash === -1 ? spec : spec.slice(0, slash);
  const prefixText = slash === -1 ? undefined : spec.slice(slash + 1);
  if (addressText === '') throw invalid('CIDR', spec, 'address is empty', REMEDY);
  if (addressText.includes('%')) throw invalid('CIDR', spec, 'IPv6 zone ids are not allowed', REMEDY);
  const family: 4 | 6 = addressText.includes(':') ? 6 : 4;
  const bytes = family === 6 ? parseIPv6(addressText) : parseIPv4(addressText);
  if (!bytes) {
    if (family === 4 && /[a-z]/i.test(addressText) && !/^[\d.]+$/.test(addressText)) {
      throw invalid(
        'CIDR',
        spec,
        'looks like a hostname, not an IP address',
        'put hostnames in the host allow list (--allow-host or [network] allow_hosts)',
      );
    }
    throw invalid('CIDR', spec, `"${addressText}" is not a valid IPv${family} address`, REMEDY);
  }
  const maxPrefix = family === 4 ? 32 : 128;
  let prefix = maxPrefix;
  if (prefixText !== undefined) {
    if (!/^(0|[1-9]\d{0,2})$/.test(prefixText))
      throw invalid('CIDR', spec, `prefix "${prefixText}" is not a number`, REMEDY);
    prefix = Number(prefixText);
    if (prefix > maxPrefix)
      throw invalid('CIDR', spec, `prefix /${prefix} is larger than /${maxPrefix} for IPv${family}`, REMEDY);
  }
  const format = family === 4 ? formatIPv4 : formatIPv6;
  const network = maskBytes(bytes, prefix);
  const address = format(network);
  if (network.some((b, i) => b !== bytes[i])) {
    throw invalid(
      'CIDR',
      spec,
      `host bits are set; the network containing it is ${address}/${prefix}`,
      `write ${address}/${prefix}, or ${format(bytes)}/${maxPrefix} for the single address`,
    );
  }
  return { family, address, prefix, cidr: `${address}/${prefix}` };
}
