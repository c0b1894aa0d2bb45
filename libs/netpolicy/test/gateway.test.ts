// The gateway against a real kernel TCP/IP stack: a TAP device in a network namespace plays the
// guest (no QEMU). Host-side servers listen on test addresses of a veth this suite creates, and
// on 127.0.0.1. Nothing here reaches beyond this machine.
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import type { ChildProcess } from 'node:child_process';
import {
  listenPortForwards,
  startGateway,
  staticResolver,
  type DeniedAttempt,
  type Gateway,
  type GatewayOptions,
  type ResolvedAddress,
} from '../src';
import { CONCURRENT, DOWNLOAD, GUEST_SERVER, HALF_CLOSE, RESET, UDP, UPLOAD } from './helpers/guest-scripts';
import { TestNetwork, type ExecResult } from './helpers/netns';

const describeRoot = TestNetwork.available() ? describe : describe.skip;
jest.setTimeout(60_000);

const GW = '192.168.127.1';

describeRoot('gateway with a namespace as the guest', () => {
  let tn: TestNetwork;
  let gw: Gateway | undefined;
  let A: string; // allowed test host address
  let B: string; // another host address, denied by the CIDR/host policies
  const denied: DeniedAttempt[] = [];
  const servers: Array<net.Server | dgram.Socket> = [];
  const ports: Record<string, number> = {};
  const dnsTable: Record<string, Array<string | ResolvedAddress>> = {};
  let lastSourceDigest = '';
  let sourceWritten = 0;
  let halfCloseGot = '';
  let hostResetError = '';

  const listen = async (name: string, server: net.Server, host: string): Promise<void> => {
    await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
    ports[name] = (server.address() as net.AddressInfo).port;
    servers.push(server);
  };

  async function useGateway(options: Partial<GatewayOptions>): Promise<Gateway> {
    await gw?.close();
    denied.length = 0;
    // Reads the table on every query, so a test can change an answer.
    const resolver = { resolve4: (name: string) => staticResolver(dnsTable, 5).resolve4(name) };
    gw = await startGateway({ policy: {}, resolver, onDenied: (d) => denied.push(d), ...options });
    gw.attach(tn.tap.link());
    return gw;
  }

  const parse = (r: ExecResult): Record<string, unknown> => {
    const line = r.stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new Error(`guest program printed no JSON (exit ${r.code}): ${r.stdout} ${r.stderr}`);
    }
  };
  const curl = (url: string): Promise<ExecResult> => tn.exec('curl', ['-sS', '-m', '10', url]);

  beforeAll(async () => {
    tn = TestNetwork.create('g');
    [A, B] = tn.hostAddresses;
    dnsTable['allowed.test'] = [A];
    dnsTable['other.test'] = [B];
    dnsTable['cdn.test'] = [A];
    for (const [name, host, body] of [
      ['httpA', A, 'A'],
      ['httpB', B, 'B'],
      ['loop', '127.0.0.1', 'loopback'],
    ] as const) {
      await listen(
        name,
        http.createServer((_q, res) => res.end(body)),
        host,
      );
    }
    await listen(
      'echo',
      net.createServer({ allowHalfOpen: true }, (s) => s.pipe(s)),
      A,
    );
    await listen(
      'sink',
      net.createServer({ allowHalfOpen: true }, (s) => {
        const h = crypto.createHash('sha256');
        s.on('data', (d) => h.update(d));
        s.on('end', () => s.end(h.digest('hex') + '\n'));
      }),
      A,
    );
    // Sends the number of MiB asked for, with back-pressure; records its digest and progress.
    await listen(
      'source',
      net.createServer((s) => {
        s.once('data', (d) => {
          const total = Number(d.toString().trim()) * 1048576;
          const h = crypto.createHash('sha256');
          sourceWritten = 0;
          const pump = (): void => {
            while (sourceWritten < total) {
              const b = crypto.randomBytes(65536);
              h.update(b);
              sourceWritten += b.length;
              if (!s.write(b)) return void s.once('drain', pump);
            }
            lastSourceDigest = h.digest('hex');
            s.end();
          };
          pump();
        });
        s.on('error', () => undefined);
      }),
      A,
    );
    await listen(
      'halfclose',
      net.createServer({ allowHalfOpen: true }, (s) => {
        let got = '';
        s.on('data', (d) => (got += d));
        s.on('end', () => {
          halfCloseGot = got;
          s.end();
        });
        s.end('hello');
      }),
      A,
    );
    await listen(
      'resetter',
      net.createServer((s) => {
        s.once('data', () => s.resetAndDestroy());
        s.on('error', () => undefined);
      }),
      A,
    );
    await listen(
      'victim',
      net.createServer((s) => {
        s.on('data', () => undefined);
        s.on('error', (e: NodeJS.ErrnoException) => (hostResetError = e.code ?? 'error'));
      }),
      A,
    );
    const udp = dgram.createSocket('udp4');
    udp.on('message', (m, r) => udp.send(Buffer.concat([Buffer.from('echo:'), m]), r.port, r.address));
    await new Promise<void>((resolve) => udp.bind(0, A, () => resolve()));
    ports.udp = udp.address().port;
    servers.push(udp);
  });

  afterAll(async () => {
    await gw?.close();
    for (const s of servers) s.close();
    tn?.cleanup();
  });

  describe('full outbound (--net)', () => {
    beforeAll(() => useGateway({ policy: {} }));

    test('the guest pings the gateway', async () => {
      const r = await tn.exec('busybox', ['ping', '-c', '1', '-W', '3', GW]);
      expect(r.stdout).toContain('1 packets received');
    });

    test('DHCP hands out the static configuration', async () => {
      const script = 'echo "$1 ip=$ip mask=$mask router=$router dns=$dns mtu=$mtu"';
      const res = await tn.exec('sh', [
        '-c',
        `printf '%s\\n' '${script}' > /tmp/udhcpc-${process.pid}.sh; chmod +x /tmp/udhcpc-${process.pid}.sh; busybox udhcpc -i eth0 -n -q -f -t 3 -O mtu -s /tmp/udhcpc-${process.pid}.sh; rm -f /tmp/udhcpc-${process.pid}.sh`,
      ]);
      expect(res.stdout).toContain('bound ip=192.168.127.2 mask=24 router=192.168.127.1 dns=192.168.127.1 mtu=1500');
      expect(gw?.guestConfig).toEqual(
        expect.objectContaining({ ip: '192.168.127.2', prefix: 24, gateway: GW, dns: [GW], mtu: 1500 }),
      );
    });

    test('TCP reaches any host address; the gateway address reaches the host loopback', async () => {
      expect((await curl(`http://${A}:${ports.httpA}/`)).stdout).toBe('A');
      expect((await curl(`http://${B}:${ports.httpB}/`)).stdout).toBe('B');
      expect((await curl(`http://${GW}:${ports.loop}/`)).stdout).toBe('loopback');
    });

    test('link-local (metadata) addresses are denied at once with a RST, and reported', async () => {
      const r = await curl('http://169.254.169.254/latest/meta-data/');
      expect(r.code).toBe(7); // curl: could not connect (refused), not 28 (timeout)
      expect(denied).toContainEqual(
        expect.objectContaining({ protocol: 'tcp', destination: '169.254.169.254', port: 80 }),
      );
    });

    test('DNS resolves any name through the upstream; unknown names are NXDOMAIN', async () => {
      const ok = await tn.exec('busybox', ['nslookup', 'other.test', GW]);
      expect(ok.stdout).toContain(`Address: ${B}`);
      const missing = await tn.exec('busybox', ['nslookup', 'missing.test', GW]);
      expect(missing.stdout + missing.stderr).toMatch(/NXDOMAIN/);
    });

    test('UDP is relayed both ways', async () => {
      expect(parse(await tn.node(UDP, [A, String(ports.udp)]))).toEqual({ reply: 'echo:ping-udp' });
      expect(gw?.stats().udpFlows).toBeGreaterThan(0);
    });

    test('64 MiB guest -> host and host -> guest arrive intact (sha256), with half-close', async () => {
      const up = parse(await tn.node(UPLOAD, [A, String(ports.sink), '64'], { timeoutMs: 50_000 }));
      expect(up.reply).toBe(up.sent);
      const down = parse(await tn.node(DOWNLOAD, [A, String(ports.source), '64', '0'], { timeoutMs: 50_000 }));
      expect(down).toEqual({ n: 64 * 1048576, digest: lastSourceDigest });
    });

    test('200 concurrent connections each get their own echo', async () => {
      const r = parse(await tn.node(CONCURRENT, [A, String(ports.echo), '200'], { timeoutMs: 50_000 }));
      expect(r).toEqual({ ok: 200, bad: 0, errors: {} });
    });

    test('a guest that stops reading: the host is paused, gateway memory stays bounded, the stream resumes intact', async () => {
      let maxBuffered = 0;
      let writtenDuringPause = 0;
      const sampler = setInterval(() => {
        maxBuffered = Math.max(maxBuffered, gw?.stats().bufferedBytes ?? 0);
        writtenDuringPause = sourceWritten;
      }, 50);
      const run = tn.node(DOWNLOAD, [A, String(ports.source), '48', '2500'], { timeoutMs: 50_000 });
      const r = parse(await run);
      clearInterval(sampler);
      expect(r).toEqual({ n: 48 * 1048576, digest: lastSourceDigest });
      // Send buffer (256 KiB) + one host read (64 KiB) at most.
      expect(maxBuffered).toBeLessThanOrEqual(256 * 1024 + 65536);
      expect(maxBuffered).toBeGreaterThan(0);
      void writtenDuringPause;
    });

    test('a host that stops reading: the guest is throttled by the window, memory stays bounded', async () => {
      let paused: net.Socket | undefined;
      let digest = '';
      const slow = net.createServer({ allowHalfOpen: true }, (s) => {
        paused = s;
        s.pause();
        const h = crypto.createHash('sha256');
        s.on('data', (d) => h.update(d));
        s.on('end', () => {
          digest = h.digest('hex');
          s.end(digest + '\n');
        });
      });
      await new Promise<void>((resolve) => slow.listen(0, A, () => resolve()));
      let maxBuffered = 0;
      const sampler = setInterval(() => (maxBuffered = Math.max(maxBuffered, gw?.stats().bufferedBytes ?? 0)), 50);
      setTimeout(() => paused?.resume(), 2000);
      const r = parse(
        await tn.node(UPLOAD, [A, String((slow.address() as net.AddressInfo).port), '24'], { timeoutMs: 50_000 }),
      );
      clearInterval(sampler);
      slow.close();
      expect(r.reply).toBe(r.sent);
      expect(maxBuffered).toBeLessThanOrEqual(256 * 1024 + 65536);
      expect(maxBuffered).toBeGreaterThan(0);
    });

    test('half-close: the host ends its side first, the guest still sends', async () => {
      halfCloseGot = '';
      expect(parse(await tn.node(HALF_CLOSE, [A, String(ports.halfclose)]))).toEqual({ got: 'hello' });
      await waitFor(() => halfCloseGot === 'world');
    });

    test('RST from the host reaches the guest, RST from the guest reaches the host', async () => {
      expect(parse(await tn.node(RESET, [A, String(ports.resetter), 'wait']))).toEqual({ error: 'ECONNRESET' });
      hostResetError = '';
      expect(parse(await tn.node(RESET, [A, String(ports.victim), 'reset']))).toEqual({ reset: true });
      await waitFor(() => hostResetError === 'ECONNRESET');
    });

    test('a closed host port is refused with a RST', async () => {
      const closed = net.createServer();
      await new Promise<void>((resolve) => closed.listen(0, A, () => resolve()));
      const port = (closed.address() as net.AddressInfo).port;
      await new Promise<void>((resolve) => closed.close(() => resolve()));
      expect((await curl(`http://${A}:${port}/`)).code).toBe(7);
    });
  });

  describe('--allow-cidr', () => {
    beforeAll(() => useGateway({ policy: { allowCidrs: [`${A}/32`] } }));

    test('TCP to an allowed CIDR connects; elsewhere is refused at once and reported', async () => {
      expect((await curl(`http://${A}:${ports.httpA}/`)).stdout).toBe('A');
      expect((await curl(`http://${B}:${ports.httpB}/`)).code).toBe(7);
      expect(denied).toContainEqual(expect.objectContaining({ protocol: 'tcp', destination: B, port: ports.httpB }));
      expect((await curl(`http://${GW}:${ports.loop}/`)).code).toBe(7); // host loopback is not in the list
    });

    test('UDP to a denied address gets no relay', async () => {
      expect(parse(await tn.node(UDP, [A, String(ports.udp)]))).toEqual({ reply: 'echo:ping-udp' });
      const r = parse(await tn.node(UDP, [B, String(ports.udp)]));
      expect(r.reply).toBeUndefined();
      expect(denied).toContainEqual(expect.objectContaining({ protocol: 'udp', destination: B }));
    });

    test('169.254.0.0/16 stays denied even when a CIDR covers it', async () => {
      await useGateway({ policy: { allowCidrs: ['0.0.0.0/0'] } });
      expect((await curl(`http://${B}:${ports.httpB}/`)).stdout).toBe('B');
      expect((await curl('http://169.254.169.254/')).code).toBe(7);
    });
  });

  describe('--allow-host', () => {
    beforeAll(() => useGateway({ policy: { allowHosts: ['allowed.test', 'cdn.test'] } }));

    test('only allowed names resolve; others are NXDOMAIN', async () => {
      expect((await tn.exec('busybox', ['nslookup', 'allowed.test', GW])).stdout).toContain(`Address: ${A}`);
      const other = await tn.exec('busybox', ['nslookup', 'other.test', GW]);
      expect(other.stdout + other.stderr).toMatch(/NXDOMAIN/);
      expect(denied).toContainEqual(expect.objectContaining({ protocol: 'dns', destination: 'other.test' }));
    });

    test('connections by allowed name work; a denied name does not resolve, its address is refused', async () => {
      expect((await curl(`http://allowed.test:${ports.httpA}/`)).stdout).toBe('A');
      expect((await curl(`http://other.test:${ports.httpB}/`)).code).toBe(6); // could not resolve
      expect((await curl(`http://${B}:${ports.httpB}/`)).code).toBe(7);
    });

    test('addresses seen in answers for allowed names are learned', async () => {
      // cdn.test resolved to A at start; now its answer moves to B (a CDN rotating addresses).
      expect((await curl(`http://${B}:${ports.httpB}/`)).code).toBe(7);
      dnsTable['cdn.test'] = [B];
      try {
        expect((await tn.exec('busybox', ['nslookup', 'cdn.test', GW])).stdout).toContain(`Address: ${B}`);
        expect((await curl(`http://${B}:${ports.httpB}/`)).stdout).toBe('B');
      } finally {
        dnsTable['cdn.test'] = [A];
      }
    });
  });

  describe('--outbound-localhost-only', () => {
    beforeAll(() => useGateway({ policy: { allowCidrs: ['127.0.0.0/8', '::1'] } }));

    test('the gateway address reaches the host loopback; nothing else does', async () => {
      expect((await curl(`http://${GW}:${ports.loop}/`)).stdout).toBe('loopback');
      expect((await curl(`http://${A}:${ports.httpA}/`)).code).toBe(7);
    });
  });

  describe('port forwarding (-p)', () => {
    let guestServer: ChildProcess | undefined;
    afterAll(() => guestServer?.kill('SIGKILL'));

    test('a host loopback port serves the guest port; a closed guest port resets the client', async () => {
      guestServer = await tn.startNode(GUEST_SERVER, ['8080', '30000']);
      const forwards = await listenPortForwards([
        { hostPort: 0, guestPort: 8080 },
        { hostPort: 0, guestPort: 8081 },
      ]);
      try {
        await useGateway({ policy: {}, portForwards: forwards });
        const [open, closed] = forwards.bound;
        expect(open.address).toBe('127.0.0.1');
        const body = await new Promise<string>((resolve, reject) => {
          http
            .get(`http://127.0.0.1:${open.hostPort}/x`, (res) => {
              let b = '';
              res.on('data', (d) => (b += d));
              res.on('end', () => resolve(b));
            })
            .on('error', reject);
        });
        expect(body).toBe('from guest /x');
        const err = await new Promise<string>((resolve) => {
          const s = net.connect(closed.hostPort, '127.0.0.1');
          s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
          s.on('close', () => resolve('closed'));
        });
        expect(err).toBe('ECONNRESET');
      } finally {
        await forwards.close();
      }
    });
  });
});

async function waitFor(condition: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
