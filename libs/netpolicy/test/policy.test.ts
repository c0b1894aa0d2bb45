import { EgressPolicy, staticResolver } from '../src';
import { parseCidr } from '@smolvm/config';

test('no allow list: everything but link-local, multicast and reserved', () => {
  const p = new EgressPolicy({});
  expect(p.unrestricted).toBe(true);
  expect(p.check('93.184.216.34')).toEqual({ allowed: true });
  expect(p.check('127.0.0.1')).toEqual({ allowed: true });
  expect(p.check('169.254.169.254')).toEqual({ allowed: false, reason: expect.stringMatching(/link-local/) });
  expect(p.check('fe80::1')).toEqual(expect.objectContaining({ allowed: false }));
  expect(p.check('224.0.0.1')).toEqual(expect.objectContaining({ allowed: false }));
  expect(p.allowsName('anything.example')).toBe(true);
});

test('deny-all: no address, loopback or the old sentinels included, and no name; never with allow lists', () => {
  const p = new EgressPolicy({ denyAll: true });
  expect(p.unrestricted).toBe(false);
  expect(p.filtersDns).toBe(true);
  for (const address of ['93.184.216.34', '127.0.0.1', '0.0.0.0', '192.0.2.0', '10.0.0.1', '::1', '2001:db8::1']) {
    expect(p.check(address)).toEqual({ allowed: false, reason: expect.any(String) });
  }
  expect(p.check('93.184.216.34')).toEqual({ allowed: false, reason: 'this VM has no outbound network' });
  expect(p.allowsName('example.com')).toBe(false);
  expect(p.nameDeniedReason('example.com')).toMatch(/no outbound network/);
  expect(() => new EgressPolicy({ denyAll: true, allowCidrs: ['10.0.0.0/8'] })).toThrow(/deny-all/);
  expect(() => new EgressPolicy({ denyAll: true, allowHosts: ['example.com'] })).toThrow(/deny-all/);
});

test('CIDRs (v4 and v6, text or parsed) allow their ranges only; link-local stays denied under 0.0.0.0/0', () => {
  const p = new EgressPolicy({ allowCidrs: ['10.0.0.0/8', parseCidr('fd00::/8'), '::1'] });
  expect(p.check('10.200.1.1').allowed).toBe(true);
  expect(p.check('11.0.0.1').allowed).toBe(false);
  expect(p.check('fd12::3').allowed).toBe(true);
  expect(p.check('::1').allowed).toBe(true);
  expect(p.check('2001:db8::1').allowed).toBe(false);
  expect(p.allowsName('anything.example')).toBe(false); // CIDRs alone: no name resolves (DNS is a channel out)
  expect(new EgressPolicy({ allowCidrs: ['0.0.0.0/0'] }).check('169.254.169.254').allowed).toBe(false);
  expect(() => new EgressPolicy({ allowCidrs: ['10.1.2.3/8'] })).toThrow(/host bits/);
});

test('hosts: resolved at start (kept), DNS filtered, learned answers expire with their TTL', async () => {
  let now = 1_000_000;
  const warnings: string[] = [];
  const p = await EgressPolicy.create(
    { allowHosts: ['api.example.test', 'Missing.Test.'], allowCidrs: ['192.0.2.0/24'] },
    staticResolver({ 'api.example.test': ['198.51.100.1'] }),
    { now: () => now, minLearnedTtl: 1, onWarning: (w) => warnings.push(w) },
  );
  expect(warnings).toEqual([expect.stringMatching(/missing\.test did not resolve/)]);
  expect(p.allowsName('API.example.test.')).toBe(true);
  expect(p.allowsName('evil.test')).toBe(false);
  expect(p.check('198.51.100.1').allowed).toBe(true);
  expect(p.check('192.0.2.7').allowed).toBe(true); // union with the CIDRs
  expect(p.check('198.51.100.2').allowed).toBe(false);
  p.learn([{ address: '198.51.100.2', ttl: 30 }]);
  expect(p.check('198.51.100.2').allowed).toBe(true);
  now += 31_000;
  expect(p.check('198.51.100.2')).toEqual({ allowed: false, reason: expect.stringMatching(/expired/) });
  expect(p.check('198.51.100.1').allowed).toBe(true); // start-time answers stay
});
