import { parseAllowHost, parseCidr, type Cidr } from '../src';
import { thrown } from './helpers';

describe('parseCidr', () => {
  const good: Array<[string, Cidr]> = [
    ['10.0.0.0/8', { family: 4, address: '10.0.0.0', prefix: 8, cidr: '10.0.0.0/8' }],
    ['192.168.1.0/24', { family: 4, address: '192.168.1.0', prefix: 24, cidr: '192.168.1.0/24' }],
    ['1.2.3.4', { family: 4, address: '1.2.3.4', prefix: 32, cidr: '1.2.3.4/32' }],
    ['1.2.3.4/32', { family: 4, address: '1.2.3.4', prefix: 32, cidr: '1.2.3.4/32' }],
    ['0.0.0.0/0', { family: 4, address: '0.0.0.0', prefix: 0, cidr: '0.0.0.0/0' }],
    ['172.16.0.0/12', { family: 4, address: '172.16.0.0', prefix: 12, cidr: '172.16.0.0/12' }],
    ['::1', { family: 6, address: '::1', prefix: 128, cidr: '::1/128' }],
    ['fd00::/8', { family: 6, address: 'fd00::', prefix: 8, cidr: 'fd00::/8' }],
    ['2001:DB8:0:0::/32', { family: 6, address: '2001:db8::', prefix: 32, cidr: '2001:db8::/32' }],
    [
      '2001:0db8:0000:0000:0000:0000:0000:0001',
      { family: 6, address: '2001:db8::1', prefix: 128, cidr: '2001:db8::1/128' },
    ],
    ['2001:db8:0:1:0:0:0:1', { family: 6, address: '2001:db8:0:1::1', prefix: 128, cidr: '2001:db8:0:1::1/128' }],
    ['2001:db8:1:0:1::/80', { family: 6, address: '2001:db8:1:0:1::', prefix: 80, cidr: '2001:db8:1:0:1::/80' }],
    ['::ffff:10.0.0.1', { family: 6, address: '::ffff:10.0.0.1', prefix: 128, cidr: '::ffff:10.0.0.1/128' }],
    ['::/0', { family: 6, address: '::', prefix: 0, cidr: '::/0' }],
    ['fe80::/10', { family: 6, address: 'fe80::', prefix: 10, cidr: 'fe80::/10' }],
  ];
  it.each(good)('%s', (spec, expected) => {
    expect(parseCidr(spec)).toEqual(expected);
  });

  const REMEDY = 'write an IPv4 or IPv6 network as ADDRESS/PREFIX, e.g. 10.0.0.0/8 or fd00::/8, or a single address';
  const bad: Array<[string, string, string]> = [
    [
      '10.1.2.3/8',
      'host bits are set; the network containing it is 10.0.0.0/8',
      'write 10.0.0.0/8, or 10.1.2.3/32 for the single address',
    ],
    [
      'fd00::1/8',
      'host bits are set; the network containing it is fd00::/8',
      'write fd00::/8, or fd00::1/128 for the single address',
    ],
    ['10.0.0.0/33', 'prefix /33 is larger than /32 for IPv4', REMEDY],
    ['::/129', 'prefix /129 is larger than /128 for IPv6', REMEDY],
    ['10.0.0.0/', 'prefix "" is not a number', REMEDY],
    ['10.0.0.0/08', 'prefix "08" is not a number', REMEDY],
    ['10.0.0.0/-1', 'prefix "-1" is not a number', REMEDY],
    ['/8', 'address is empty', REMEDY],
    ['256.0.0.0/8', '"256.0.0.0" is not a valid IPv4 address', REMEDY],
    ['10.0.0/8', '"10.0.0" is not a valid IPv4 address', REMEDY],
    ['010.0.0.0/8', '"010.0.0.0" is not a valid IPv4 address', REMEDY],
    ['1:2:3:4:5:6:7:8:9', '"1:2:3:4:5:6:7:8:9" is not a valid IPv6 address', REMEDY],
    ['1::2::3', '"1::2::3" is not a valid IPv6 address', REMEDY],
    ['12345::', '"12345::" is not a valid IPv6 address', REMEDY],
    ['fe80::1%eth0', 'IPv6 zone ids are not allowed', REMEDY],
    [
      'example.com',
      'looks like a hostname, not an IP address',
      'put hostnames in the host allow list (--allow-host or [network] allow_hosts)',
    ],
  ];
  it.each(bad)('rejects %j', (spec, why, remedy) => {
    const err = thrown(() => parseCidr(spec));
    expect(err.message).toBe(`invalid CIDR ${JSON.stringify(spec)}: ${why}`);
    expect(err.remedy).toBe(remedy);
  });
});

describe('parseAllowHost', () => {
  it.each([
    ['api.stripe.com', 'api.stripe.com'],
    ['API.Stripe.COM', 'api.stripe.com'],
    ['github.com.', 'github.com'],
    ['localhost', 'localhost'],
    ['xn--bcher-kva.example', 'xn--bcher-kva.example'],
    ['a-b.c1.io', 'a-b.c1.io'],
  ])('%s -> %s', (spec, expected) => {
    expect(parseAllowHost(spec)).toBe(expected);
  });

  const REMEDY = 'write a DNS hostname without scheme, port or path, e.g. api.stripe.com';
  const CIDR = 'put IP addresses in the CIDR allow list (--allow-cidr or [network] allow_cidrs)';
  const bad: Array<[string, string, string]> = [
    ['', 'is empty', REMEDY],
    ['https://api.stripe.com/v1', 'contains a URL scheme', 'write only the hostname, e.g. api.stripe.com'],
    [
      '*.example.com',
      'wildcards are not supported because hosts are resolved once at VM start',
      'list each hostname the VM needs, e.g. api.example.com',
    ],
    ['1.2.3.4', 'is an IP address, not a hostname', CIDR],
    ['::1', 'is an IP address, not a hostname', CIDR],
    ['[2001:db8::1]', 'is an IP address, not a hostname', CIDR],
    ['api.stripe.com:443', 'contains a port; egress filtering applies to all ports of a host', REMEDY],
    ['api.stripe.com/v1', 'contains a path', REMEDY],
    ['bücher.example', 'contains non-ASCII characters', 'write internationalized names in their punycode (xn--) form'],
    ['a..b', 'has an empty label (".." or a leading ".")', REMEDY],
    ['.a.b', 'has an empty label (".." or a leading ".")', REMEDY],
    ['-a.com', 'label "-a" may only contain letters, digits and inner hyphens', REMEDY],
    ['my_host.com', 'label "my_host" may only contain letters, digits and inner hyphens', REMEDY],
    [`${'a'.repeat(64)}.com`, `label "${'a'.repeat(64)}" is longer than 63 characters`, REMEDY],
    [`${'a.'.repeat(127)}com`, 'is 257 characters long; the limit is 253', REMEDY],
    ['host.123', 'top-level label is all digits', REMEDY],
  ];
  it.each(bad)('rejects %j', (spec, why, remedy) => {
    const err = thrown(() => parseAllowHost(spec));
    expect(err.message).toBe(`invalid hostname ${JSON.stringify(spec)}: ${why}`);
    expect(err.remedy).toBe(remedy);
  });
});
