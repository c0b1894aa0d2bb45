// Network gateway benchmark (issue 6): TCP through @smolvm/netpolicy's gateway against the kernel's
// own path, in the same run, interleaved. The "guest" is a network namespace with its real TCP/IP
// stack: behind a TAP device served by the gateway (in this process), or behind a veth pair routed
// by the kernel (baseline). Host servers run in this process on test addresses of this machine.
// Measured: throughput guest->host and host->guest, connection setup latency, and this process's
// CPU time per GB moved (gateway + host sockets; the baseline's is host sockets alone).
//   node tools/run-ts.mjs tools/bench/net-gateway.ts [runs=3] [MiB=64]
// Needs root (namespaces, /dev/net/tun). QEMU's slirp comparison comes with the VM wiring.
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { startGateway, staticResolver } from '@smolvm/netpolicy';
import { TestNetwork } from '../../libs/netpolicy/test/helpers/netns';
import { median, report, type Series } from './lib/stats';

const runs = Number(process.argv[2] ?? 3);
const mib = Number(process.argv[3] ?? 64);

// Guest programs: each prints {ms} (plus a byte count) measured inside the guest.
const UPLOAD = `
const net = require('net');
const [host, port, mb] = process.argv.slice(1);
const total = Number(mb) * 1048576, chunk = Buffer.alloc(65536, 7);
let sent = 0, t0;
const s = net.connect({ host, port: Number(port), allowHalfOpen: true });
const pump = () => { while (sent < total) { sent += chunk.length; if (!s.write(chunk)) return s.once('drain', pump); } s.end(); };
s.on('connect', () => { t0 = process.hrtime.bigint(); pump(); });
s.on('data', () => {});
s.on('end', () => console.log(JSON.stringify({ ms: Number(process.hrtime.bigint() - t0) / 1e6, bytes: sent })));
`;
const DOWNLOAD = `
const net = require('net');
const [host, port, mb] = process.argv.slice(1);
let n = 0, t0;
const s = net.connect({ host, port: Number(port) });
s.on('connect', () => { t0 = process.hrtime.bigint(); s.write(mb + '\\n'); });
s.on('data', (d) => (n += d.length));
s.on('end', () => console.log(JSON.stringify({ ms: Number(process.hrtime.bigint() - t0) / 1e6, bytes: n })));
`;
const CONNECT = `
const net = require('net');
const [host, port, count] = process.argv.slice(1);
const times = [];
const once = (i) => {
  if (i === Number(count)) { times.sort((a, b) => a - b); return console.log(JSON.stringify({ ms: times[times.length >> 1] })); }
  const t0 = process.hrtime.bigint();
  const s = net.connect({ host, port: Number(port) }, () => { times.push(Number(process.hrtime.bigint() - t0) / 1e6); s.destroy(); once(i + 1); });
};
once(0);
`;

interface Path {
  label: string;
  tn: {
    node(
      script: string,
      args: string[],
      o?: { timeoutMs?: number },
    ): Promise<{ stdout: string; stderr: string; code: number | null }>;
  };
  host: string;
}

async function main(): Promise<void> {
  if (!TestNetwork.available()) throw new Error('needs root and /dev/net/tun');
  const tn = TestNetwork.create('b');
  const baseNs = `smolvm-bench-${process.pid}`;
  const veth = `smk${process.pid % 100000}`;
  const n = (process.pid % 200) + 20;
  const baseHost = `198.19.${n}.1`;
  const sh = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });
  const servers: net.Server[] = [];
  const gw = await startGateway({ policy: {}, resolver: staticResolver({}) });
  try {
    sh('netns', 'add', baseNs);
    sh('link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', baseNs);
    sh('addr', 'add', `${baseHost}/24`, 'dev', veth);
    sh('link', 'set', veth, 'up');
    sh('netns', 'exec', baseNs, 'ip', 'addr', 'add', `198.19.${n}.2/24`, 'dev', 'eth0');
    sh('netns', 'exec', baseNs, 'ip', 'link', 'set', 'eth0', 'up');
    sh('netns', 'exec', baseNs, 'ip', 'link', 'set', 'lo', 'up');
    gw.attach(tn.tap.link());

    const block = Buffer.alloc(65536, 3);
    const sink = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('data', () => undefined);
      s.on('end', () => s.end('done'));
    });
    const source = net.createServer((s) => {
      s.once('data', (d) => {
        let left = Number(d.toString().trim()) * 1048576;
        const pump = (): void => {
          while (left > 0) {
            left -= block.length;
            if (!s.write(block)) return void s.once('drain', pump);
          }
          s.end();
        };
        pump();
      });
      s.on('error', () => undefined);
    });
    const accept = net.createServer((s) => s.on('error', () => undefined));
    const ports: number[] = [];
    for (const server of [sink, source, accept]) {
      await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', () => resolve()));
      ports.push((server.address() as net.AddressInfo).port);
      servers.push(server);
    }
    const [sinkPort, sourcePort, acceptPort] = ports;

    const baseline: Path = {
      label: 'kernel veth',
      tn: { node: (script, args, o) => nodeIn(baseNs, script, args, o?.timeoutMs) },
      host: baseHost,
    };
    const gateway: Path = { label: 'netpolicy gateway', tn, host: tn.hostAddresses[0] };
    const paths = [baseline, gateway];

    const series = (what: string): Series[] => paths.map((p) => ({ label: `${p.label} ${what}`, samples: [] }));
    const up = series('guest->host');
    const down = series('host->guest');
    const conn = series('connect');
    const cpu = paths.map(() => ({ ms: 0, bytes: 0 }));

    const measure = async (i: number, script: string, port: number, out: Series[]): Promise<void> => {
      const p = paths[i];
      const c0 = process.cpuUsage();
      const r = await p.tn.node(script, [p.host, String(port), String(mib)], { timeoutMs: 120_000 });
      const c = process.cpuUsage(c0);
      const res = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { ms?: number; bytes?: number };
      if (!res.ms || res.bytes !== mib * 1048576) throw new Error(`${p.label}: bad result ${r.stdout} ${r.stderr}`);
      out[i].samples.push((res.bytes / 1e6 / res.ms) * 1000); // MB/s
      cpu[i].ms += (c.user + c.system) / 1000;
      cpu[i].bytes += res.bytes;
    };

    for (let run = -1; run < runs; run++) {
      for (let i = 0; i < paths.length; i++) {
        const warm = run < 0;
        const target = warm ? series('') : undefined;
        await measure(i, UPLOAD, sinkPort, target ?? up);
        await measure(i, DOWNLOAD, sourcePort, target ?? down);
        const r = await paths[i].tn.node(CONNECT, [paths[i].host, String(acceptPort), '200']);
        const ms = (JSON.parse(r.stdout.trim()) as { ms: number }).ms;
        if (!warm) conn[i].samples.push(ms * 1000);
        if (warm) cpu[i] = { ms: 0, bytes: 0 };
      }
    }

    console.log(
      `\nTCP through the gateway vs the kernel's veth path; ${mib} MiB per transfer, ${runs} interleaved runs (+1 warm-up)`,
    );
    report('throughput guest -> host (MB/s, higher is better)', up, 'MB/s');
    report('throughput host -> guest (MB/s, higher is better)', down, 'MB/s');
    report('connection setup, median of 200 sequential connects (µs, lower is better)', conn, 'µs');
    console.log('\nCPU of this process (host sockets; + the gateway on its path) per GB moved');
    paths.forEach((p, i) =>
      console.log(`  ${p.label.padEnd(18)} ${(cpu[i].ms / 1000 / (cpu[i].bytes / 1e9)).toFixed(2)} CPU-s/GB`),
    );
    const ratio = (s: Series[]): string => (median(s[1].samples) / median(s[0].samples)).toFixed(2);
    console.log(
      `\n  gateway/kernel: guest->host ${ratio(up)}x, host->guest ${ratio(down)}x throughput; connect ${ratio(conn)}x latency`,
    );
    console.log(`  gateway stats: ${JSON.stringify(gw.stats())}`);
  } finally {
    await gw.close();
    for (const s of servers) s.close();
    tn.cleanup();
    try {
      sh('netns', 'delete', baseNs);
    } catch {
      // not created
    }
  }
}

async function nodeIn(
  ns: string,
  script: string,
  args: string[],
  timeoutMs = 60_000,
): Promise<{ stdout: string; stderr: string; code: number | null }> {
  const { spawn } = await import('node:child_process');
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script, '--', ...args]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code });
    });
  });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
