import { parseIPv4, parseIPv6 } from './ip';
import { invalid } from './invalid';

const REMEDY = 'write a DNS hostname without scheme, port or path, e.g. api.stripe.com';
const CIDR_REMEDY = 'put IP addresses in the CIDR allow list (--allow-cidr or [network] allow_cidrs)';
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Validates an egress hostname and returns it lowercased without a trailing dot.
 * Wildcards ("*.example.com") are refused: allowed hosts are resolved once at VM start, and a
 * wildcard has no address to resolve, so accepting it would silently allow nothing.
 */
export function parseAllowHost(spec: string): string {
  if (spec === '') throw invalid('hostname', spec, 'is empty', REMEDY);
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(spec);
  if (scheme) {
    const rest = spec.slice(scheme[0].length).split(/[/:?#]/)[0];
    throw invalid(
      'hostname',
      spec,
      'contains a URL scheme',
      `write only the hostname, e.g. ${rest || 'api.stripe.com'}`,
    );
  }
  if (spec.includes('*')) {
    throw invalid(
      'hostname',
      spec,
      'wildcards are not supported because hosts are resolved once at VM start',
      'list each hostname the VM needs, e.g. api.example.com',
    );
  }
  const unbracketed = spec.replace(/^\[(.*)\]$/, '$1');
  if (parseIPv4(spec) || /^[\d.]+$/.test(spec) || (unbracketed.includes(':') && parseIPv6(unbracketed))) {
    throw invalid('hostname', spec, 'is an IP address, not a hostname', CIDR_REMEDY);
  }
  if (spec.includes('/')) throw invalid('hostname', spec, 'contains a path', REMEDY);
  if (spec.includes(':'))
    throw invalid('hostname', spec, 'contains a port; egress filtering applies to all ports of a host', REMEDY);
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(spec)) {
    throw invalid(
      'hostname',
      spec,
      'contains non-ASCII characters',
      'write internationalized names in their punycode (xn--) form',
    );
  }
  const host = spec.toLowerCase().replace(/\.$/, '');
  if (host.length > 253) throw invalid('hostname', spec, `is ${host.length} characters long; the limit is 253`, REMEDY);
  const labels = host.split('.');
  for (const label of labels) {
    if (label === '') throw invalid('hostname', spec, 'has an empty label (".." or a leading ".")', REMEDY);
    if (label.length > 63) throw invalid('hostname', spec, `label "${label}" is longer than 63 characters`, REMEDY);
    if (!LABEL.test(label)) {
      throw invalid('hostname', spec, `label "${label}" may only contain letters, digits and inner hyphens`, REMEDY);
    }
  }
  if (/^\d+$/.test(labels[labels.length - 1])) throw invalid('hostname', spec, 'top-level label is all digits', REMEDY);
  return host;
}
