// Networking end to end: real VMs behind our gateway (docs/architecture.md#network), the built CLI. Every server a
// guest reaches lives on this machine: the host's loopback (seen by the guest as 192.168.127.1)
// and two addresses on a veth pair this suite creates (the "remote" hosts); names come from a
// DNS server on loopback that the gateway is pointed at with SMOLVM_DNS_SERVERS.
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { DnsRcode, buildDnsResponse, parseDnsQuery } from '../../../libs/netpolicy/src/dns';
import { smolvmAsync, startBusyboxBase, type CliResult } from './helpers';

jest.setTimeout(240_000);

const tag = String(process.pid % 10000);
const VETH = `smn${tag}a`;
const PEER = `smn${tag}b`;
const subnet = `198.19.${(process.pid % 200) + 20}`;
const ALLOWED = `${subnet}.1`;
const OTHER = `${subnet}.2`;

let home: string;
let env: NodeJS.ProcessEnv;
let port: number;
const servers: http.Server[] = [];
let dns: dgram.Socket;
let sshDir: string;
let busyboxBase: Awaited<ReturnType<typeof startBusyboxBase>> | undefined;

/** Plain HTTP GET with busybox nc (busybox wget crashes on a refused connection): last line = body or nc's error. */
const GET = `get() { printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 "$1" "$2" 2>&1 | tail -n1; }`;

function run(args: string[], script: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return smolvmAsync(
    ['machine', 'run', '--cpus', '1', '--memory', '256', ...args, '--', '/bin/sh', '-c', `${GET}; ${script}`],
    { ...env, ...extraEnv },
  );
}

function cli(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return smolvmAsync(args, { ...env, ...extraEnv });
}

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
}

function listen(server: http.Server, address: string, p: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(p, address, () => resolve((server.address() as net.AddressInfo).port));
  });
}

beforeAll(async () => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-net-e2e-'));
  const runtimeDir = path.join(home, 'run');
  fs.mkdirSync(runtimeDir, { mode: 0o700 });
  // Two local addresses that are not loopback: the "remote" hosts the policy allows or denies.
  ip('link', 'add', VETH, 'type', 'veth', 'peer', 'name', PEER);
  ip('addr', 'add', `${ALLOWED}/32`, 'dev', VETH);
  ip('addr', 'add', `${OTHER}/32`, 'dev', VETH);
  ip('link', 'set', VETH, 'up');
  ip('link', 'set', PEER, 'up');
  // One port on each address; the answer says which address was reached.
  for (const address of ['127.0.0.1', ALLOWED, OTHER]) {
    const server = http.createServer((req, res) => res.end(`reached ${req.socket.localAddress}\n`));
    servers.push(server);
    port = await listen(server, address, servers.length === 1 ? 0 : port);
  }
  dns = dgram.createSocket('udp4');
  dns.on('message', (m, r) => {
    const q = parseDnsQuery(m);
    if (!q) return;
    const table: Record<string, string> = { 'allowed.test': ALLOWED, 'other.test': OTHER };
    const address = q.question.type === 1 ? table[q.question.name] : undefined;
    const rcode = q.question.name in table ? DnsRcode.NOERROR : DnsRcode.NXDOMAIN;
    dns.send(buildDnsResponse(q, rcode, address ? [{ address, ttl: 30 }] : []), r.port, r.address);
  });
  await new Promise<void>((r) => dns.bind(0, '127.0.0.1', () => r()));
  // The scripts use busybox applets (nc, nslookup, httpd, ping): bare VMs run on a busybox base.
  busyboxBase = await startBusyboxBase();
  env = {
    ...busyboxBase.env,
    SMOLVM_HOME: home,
    XDG_RUNTIME_DIR: runtimeDir,
    SMOLVM_NO_TCG_WARNING: '1',
    SMOLVM_DNS_SERVERS: `127.0.0.1:${dns.address().port}`,
  };
  // A test SSH agent holding a fresh key, and ssh-add with its libraries for the guest.
  sshDir = path.join(home, 'ssh');
  fs.mkdirSync(path.join(sshDir, 'bin'), { recursive: true });
  const agent = spawnSync('ssh-agent', ['-a', path.join(sshDir, 'agent.sock')], { encoding: 'utf8' });
  if (agent.status !== 0) throw new Error(`ssh-agent: ${agent.stderr}`);
  env.SSH_AGENT_PID = /SSH_AGENT_PID=(\d+)/.exec(agent.stdout)?.[1];
  spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'smolvm-net-e2e', '-f', path.join(sshDir, 'key')]);
  const add = spawnSync('ssh-add', [path.join(sshDir, 'key')], {
    env: { ...process.env, SSH_AUTH_SOCK: path.join(sshDir, 'agent.sock') },
    encoding: 'utf8',
  });
  if (add.status !== 0) throw new Error(`ssh-add: ${add.stderr}`);
  const libs = spawnSync('ldd', ['/usr/bin/ssh-add'], { encoding: 'utf8' }).stdout.match(/\/\S+/g) ?? [];
  for (const file of ['/usr/bin/ssh-add', ...libs])
    fs.copyFileSync(fs.realpathSync(file), path.join(sshDir, 'bin', path.basename(file)));
});

afterAll(async () => {
  if (env?.SSH_AGENT_PID) process.kill(Number(env.SSH_AGENT_PID));
  await cli(['machine', 'delete', 'netkeep', '-f']).catch(() => undefined);
  for (const s of servers) s.close();
  dns?.close();
  spawnSync('ip', ['link', 'del', VETH]);
  await busyboxBase?.stop();
  fs.rmSync(home, { recursive: true, force: true });
});

test('no network flag: no NIC at all, but a working loopback', async () => {
  const r = await run([], 'ls /sys/class/net; ping -c1 -W2 127.0.0.1 | grep -o "1 packets received"');
  expect(r.stdout).toBe('lo\n1 packets received\n');
  expect(r.status).toBe(0);
});

test('--net: the host loopback through 192.168.127.1 and other host addresses; static address and resolver', async () => {
  const r = await run(
    ['--net'],
    `ip -4 -o addr show eth0 | awk '{print $4}'; cat /etc/resolv.conf; get 192.168.127.1 ${port}; get ${ALLOWED} ${port}`,
  );
  expect(r.stdout.split('\n')).toEqual([
    '192.168.127.2/24',
    'nameserver 192.168.127.1',
    'reached 127.0.0.1',
    `reached ${ALLOWED}`,
    '',
  ]);
  expect(r.status).toBe(0);
});

test('--allow-host: only the allowed name resolves and connects; denials show with --debug', async () => {
  const r = await run(
    ['--debug', '--allow-host', 'allowed.test'],
    `nslookup allowed.test >/dev/null && echo resolved; nslookup other.test >/dev/null || echo nxdomain; get allowed.test ${port}; get ${OTHER} ${port}; get 192.168.127.1 ${port}`,
  );
  const lines = r.stdout.split('\n');
  expect(lines.slice(0, 3)).toEqual(['resolved', 'nxdomain', `reached ${ALLOWED}`]);
  expect(lines[3]).toMatch(/Connection refused/);
  expect(lines[4]).toMatch(/Connection refused/);
  expect(r.stderr).toContain(`denied tcp ${OTHER}:${port}`);
  expect(r.stderr).toMatch(/denied dns other\.test/);
  expect(r.status).toBe(0);
});

test('a Smolfile [network] allow list gives the VM a NIC with that policy', async () => {
  const file = path.join(home, 'Smolfile');
  fs.writeFileSync(file, `[network]\nallow_cidrs = ["${ALLOWED}/32"]\n`);
  const r = await run(
    ['-s', file],
    `ls /sys/class/net | tr '\\n' ' '; echo; get ${ALLOWED} ${port}; get ${OTHER} ${port}`,
  );
  const lines = r.stdout.split('\n');
  expect(lines.slice(0, 2)).toEqual(['eth0 lo ', `reached ${ALLOWED}`]);
  expect(lines[2]).toMatch(/Connection refused/);
});

test('--allow-cidr: only that network; --outbound-localhost-only: only the host loopback', async () => {
  const [cidr, local] = await Promise.all([
    run(['--allow-cidr', `${ALLOWED}/32`], `get ${ALLOWED} ${port}; get ${OTHER} ${port}; get 192.168.127.1 ${port}`),
    run(['--outbound-localhost-only'], `get 192.168.127.1 ${port}; get ${ALLOWED} ${port}`),
  ]);
  const c = cidr.stdout.split('\n');
  expect(c[0]).toBe(`reached ${ALLOWED}`);
  expect(c[1]).toMatch(/Connection refused/);
  expect(c[2]).toMatch(/Connection refused/);
  expect(cidr.stderr).toBe('');
  const l = local.stdout.split('\n');
  expect(l[0]).toBe('reached 127.0.0.1');
  expect(l[1]).toMatch(/Connection refused/);
});

test('-p: the host reaches a guest HTTP server; outbound stays closed; a busy host port fails before boot', async () => {
  const hostPort = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  // The guest serves until the host asks it to stop (a CGI script that leaves a flag file).
  const script = [
    'mkdir -p /www/cgi-bin && echo guest-page > /www/index.html',
    `printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho bye\\ntouch /tmp/stop\\n' > /www/cgi-bin/stop && chmod +x /www/cgi-bin/stop`,
    'httpd -p 80 -h /www',
    `get 192.168.127.1 ${port}`,
    'i=0; while [ ! -e /tmp/stop ] && [ $i -lt 600 ]; do i=$((i+1)); sleep 0.2; done',
  ].join('; ');
  const vm = run(['-p', `${hostPort}:80`], script);
  let page = '';
  for (let i = 0; i < 600 && !page; i++) {
    page = await fetch(`http://127.0.0.1:${hostPort}/`).then(
      (res) => (res.ok ? res.text() : ''),
      () => '',
    );
    if (!page) await new Promise((r) => setTimeout(r, 200));
  }
  await fetch(`http://127.0.0.1:${hostPort}/cgi-bin/stop`).catch(() => undefined);
  expect(page).toBe('guest-page\n');
  const r = await vm;
  expect(r.stdout.split('\n')[0]).toMatch(/Connection refused/);
  expect(r.status).toBe(0);

  const busy = net.createServer();
  const busyPort = await new Promise<number>((resolve) =>
    busy.listen(0, '127.0.0.1', () => resolve((busy.address() as net.AddressInfo).port)),
  );
  try {
    const refused = await run(['-p', `${busyPort}:80`], 'true');
    expect(refused.status).toBe(1);
    expect(refused.stderr).toBe(
      `error: cannot forward host port ${busyPort} to guest port 80: 127.0.0.1:${busyPort} is already in use; stop the program listening on 127.0.0.1:${busyPort}, or pick another host port (-p OTHER:80)\n`,
    );
  } finally {
    busy.close();
  }
});

test('--ssh-agent: ssh-add -l in the guest lists the host agent key; no host agent is an error with a remedy', async () => {
  const r = await run(
    ['--ssh-agent', '-v', `${path.join(sshDir, 'bin')}:/sshbin:ro`],
    'echo $SSH_AUTH_SOCK; /sshbin/ld-linux-x86-64.so.2 --library-path /sshbin /sshbin/ssh-add -l',
    { SSH_AUTH_SOCK: path.join(sshDir, 'agent.sock') },
  );
  const fingerprint = spawnSync('ssh-keygen', ['-l', '-f', path.join(sshDir, 'key.pub')], { encoding: 'utf8' }).stdout;
  expect(r.stdout).toBe(`/run/smolvm-ssh/agent.sock\n${fingerprint}`);
  expect(r.status).toBe(0);
  const missing = await run(['--ssh-agent'], 'true', { SSH_AUTH_SOCK: '' });
  expect(missing.status).toBe(2);
  expect(missing.stderr).toMatch(
    /^error: --ssh-agent needs an SSH agent on the host, and SSH_AUTH_SOCK is not set; start an agent/,
  );
});

test('a persistent machine created with --net keeps its network and port forward across stop/start, restored and booted', async () => {
  const hostPort = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const create = await cli([
    'machine',
    'create',
    'netkeep',
    '--net',
    '-p',
    `${hostPort}:80`,
    '--cpus',
    '1',
    '--memory',
    '256',
    '--storage',
    '1',
    '--overlay',
    '1',
  ]);
  expect(create.status).toBe(0);
  // The first start is restored from the boot snapshot of the machine's shape, the second boots.
  for (const flags of [[], ['--cold']]) {
    expect((await cli(['machine', 'start', '--name', 'netkeep', ...flags])).status).toBe(0);
    const r = await cli([
      'machine',
      'exec',
      '--name',
      'netkeep',
      '--',
      '/bin/sh',
      '-c',
      `${GET}; get 192.168.127.1 ${port}; get ${ALLOWED} ${port}; mkdir -p /www && echo page-${flags.length} > /www/index.html && httpd -p 80 -h /www`,
    ]);
    expect(r.stdout).toBe(`reached 127.0.0.1\nreached ${ALLOWED}\n`);
    expect(await fetch(`http://127.0.0.1:${hostPort}/`).then((res) => res.text())).toBe(`page-${flags.length}\n`);
    expect((await cli(['machine', 'stop', '--name', 'netkeep'])).status).toBe(0);
  }
});
