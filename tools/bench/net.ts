// VM networking benchmark (issue 6): TCP between a real VM and the host through our gateway
// (-netdev stream -> @smolvm/netpolicy, in this process) against QEMU's own user-mode network
// (-netdev user, slirp, inside QEMU), in the same run, interleaved.
//   node tools/run-ts.mjs tools/bench/net.ts [runs=3] [MiB=32]
// Both VMs are booted by startVm, same agent image, 1 vCPU, 512 MiB. For slirp, the QEMU binary is
// a wrapper on PATH that swaps our `-netdev stream` for `-netdev user` on the same addresses
// (net 192.168.127.0/24, host 192.168.127.1 = the host's loopback), so the guest's static
// configuration and the programs are identical. Measured inside the guest with node: upload
// (guest->host), download (host->guest), connection setup (mean of 200 connects), all to a
// server on the host's 127.0.0.1 reached as 192.168.127.1. CPU per GB: this process's CPU time
// (the gateway, plus a little agent-protocol traffic) per GB moved; slirp's runs inside QEMU,
// mixed with the emulated guest, so it has no comparable figure.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import '@smolvm/driver-kvm';
import { startVm, type Vm } from '@smolvm/runtime';
import { WORKSPACE, median, report, type Series } from './lib/stats';

const runs = Number(process.argv[2] ?? 3);
const mib = Number(process.argv[3] ?? 32);
const agentBundle = path.join(WORKSPACE, 'apps/cli/dist/guest/agent.js');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-bench-net-'));
const NODE = '/opt/smolvm/node';

const UPLOAD = `
const net = require('net');
const [host, port, mb] = process.argv.slice(1);
const total = Number(mb) * 1048576, chunk = Buffer.alloc(65536, 7);
let sent = 0, t0;
const s = net.connect({ host, port: Number(port), allowHalfOpen: true });
const pump = () => { while (sent < total) { sent += chunk.length; if (!s.write(chunk)) return s.once('drain', pump); } s.end(); };
s.on('connect', () => { t0 = process.hrtime.bigint(); s.write('U'); pump(); });
s.on('data', () => {});
s.on('end', () => console.log(JSON.stringify({ ms: Number(process.hrtime.bigint() - t0) / 1e6, bytes: sent })));
`;
const DOWNLOAD = `
const net = require('net');
const [host, port, mb] = process.argv.slice(1);
let n = 0, t0;
const s = net.connect({ host, port: Number(port) });
s.on('connect', () => { t0 = process.hrtime.bigint(); s.write('D' + mb + '\\n'); });
s.on('data', (d) => (n += d.length));
s.on('end', () => console.log(JSON.stringify({ ms: Number(process.hrtime.bigint() - t0) / 1e6, bytes: n })));
`;
// Mean of `count` sequential connects: the guest clock under TCG ticks in 10 ms steps (jiffies),
// too coarse for one connect, so the whole series is timed.
const CONNECT = `
const net = require('net');
const [host, port, count] = process.argv.slice(1);
const t0 = process.hrtime.bigint();
const once = (i) => {
  if (i === Number(count)) return console.log(JSON.stringify({ ms: Number(process.hrtime.bigint() - t0) / 1e6 / Number(count) }));
  const s = net.connect({ host, port: Number(port) }, () => { s.destroy(); once(i + 1); });
};
once(0);
`;

/** Host side: 'U' = count and discard until end; 'D<MiB>\n' = send that much, then end; else close. */
function startServer(): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    let mode = '';
    let head = '';
    s.on('data', (d: Buffer) => {
      if (mode === 'U') return;
      head += d.toString('latin1');
      if (!mode) mode = head[0];
      if (mode === 'U') return;
      const nl = head.indexOf('\n');
      if (nl < 0) return;
      const total = Number(head.slice(1, nl)) * 1048576;
      const chunk = Buffer.alloc(65536, 9);
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          sent += chunk.length;
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
        s.end();
      };
      pump();
    });
    s.on('end', () => (mode === 'U' || !mode) && s.end());
    s.on('error', () => s.destroy());
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as net.AddressInfo).port })),
  );
}

/** A qemu-system-x86_64 on PATH that turns our stream netdev into slirp on the same addresses. */
function slirpPath(): string {
  const real = ['/usr/bin/qemu-system-x86_64', '/usr/local/bin/qemu-system-x86_64'].find((p) => fs.existsSync(p));
  if (!real) throw new Error('qemu-system-x86_64 not found');
  const dir = path.join(work, 'slirp-bin');
  fs.mkdirSync(dir);
  const wrapper = `#!/bin/sh
for a do
  shift
  case "$a" in
    stream,id=net0,*) set -- "$@" "user,id=net0,net=192.168.127.0/24,host=192.168.127.1,dns=192.168.127.3,dhcpstart=192.168.127.15,restrict=off" ;;
    *) set -- "$@" "$a" ;;
  esac
done
exec ${real} "$@"
`;
  fs.writeFileSync(path.join(dir, 'qemu-system-x86_64'), wrapper, { mode: 0o755 });
  return `${dir}:${process.env.PATH ?? ''}`;
}

async function guestNode(vm: Vm, script: string, args: string[]): Promise<{ ms: number; bytes?: number }> {
  const s = await vm.exec({ argv: [NODE, '-e', script, ...args] });
  let out = '';
  let err = '';
  s.stdout.on('data', (d: Buffer) => (out += d.toString()));
  s.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const status = await s.exit;
  if (status.code !== 0) throw new Error(`guest node failed (${status.code ?? status.signal}): ${err.trim()}`);
  return JSON.parse(out.trim()) as { ms: number; bytes?: number };
}

function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

async function main(): Promise<void> {
  process.env.SMOLVM_NO_TCG_WARNING = '1';
  if (!fs.existsSync(agentBundle)) throw new Error('build the CLI first: npx nx build cli');
  const { server, port } = await startServer();
  const home = path.join(work, 'home');
  const base = { SMOLVM_HOME: home, SMOLVM_NO_TCG_WARNING: '1', PATH: process.env.PATH };
  // --outbound-localhost-only's policy: the guest reaches only the host's loopback.
  const bootWith = (env: NodeJS.ProcessEnv) =>
    startVm({ cpus: 1, memoryMiB: 512, agentBundle, env, network: { outbound: true, allowCidrs: ['127.0.0.0/8'] } });
  const vms: Array<{ label: string; vm: Vm }> = [];
  try {
    vms.push({ label: 'gateway (-netdev stream)', vm: await bootWith(base) });
    // The registered kvm driver spawns QEMU by name with process.env: the wrapper goes first on
    // PATH for this one boot.
    const path0 = process.env.PATH;
    process.env.PATH = slirpPath();
    try {
      vms.push({ label: 'slirp (-netdev user)', vm: await bootWith(base) });
    } finally {
      process.env.PATH = path0;
    }
    const upload = vms.map((v) => ({ label: v.label, samples: [] as number[] }));
    const download = vms.map((v) => ({ label: v.label, samples: [] as number[] }));
    const connect = vms.map((v) => ({ label: v.label, samples: [] as number[] }));
    let gatewayCpu = 0;
    let gatewayBytes = 0;
    for (const { vm } of vms) await guestNode(vm, CONNECT, ['192.168.127.1', String(port), '5']); // warm-up
    for (let i = 0; i < runs; i++) {
      for (const [j, { vm }] of vms.entries()) {
        const c0 = cpuSeconds();
        const up = await guestNode(vm, UPLOAD, ['192.168.127.1', String(port), String(mib)]);
        const down = await guestNode(vm, DOWNLOAD, ['192.168.127.1', String(port), String(mib)]);
        if (j === 0) {
          gatewayCpu += cpuSeconds() - c0;
          gatewayBytes += (up.bytes ?? 0) + (down.bytes ?? 0);
        }
        if (down.bytes !== mib * 1048576) throw new Error(`download got ${down.bytes} bytes`);
        upload[j].samples.push((up.bytes ?? 0) / 1e6 / (up.ms / 1000));
        download[j].samples.push((down.bytes ?? 0) / 1e6 / (down.ms / 1000));
        connect[j].samples.push((await guestNode(vm, CONNECT, ['192.168.127.1', String(port), '200'])).ms);
      }
    }
    console.log(
      `VM TCP to the host's loopback (192.168.127.1), ${mib} MiB per transfer, ${runs} runs, 1 vCPU, ${vms[0].vm.agentInfo.node ?? ''} in the guest`,
    );
    report('guest -> host throughput', upload as Series[], 'MB/s', upload[1]);
    report('host -> guest throughput', download as Series[], 'MB/s', download[1]);
    report('connection setup (mean of 200 sequential connects per run)', connect as Series[], 'ms', connect[1]);
    console.log(
      `\ngateway CPU (this process): ${(gatewayCpu / (gatewayBytes / 1e9)).toFixed(1)} CPU-s per GB moved (${(gatewayBytes / 1e6).toFixed(0)} MB)`,
    );
    console.log(
      `throughput ratios (gateway / slirp): up ${(median(upload[0].samples) / median(upload[1].samples)).toFixed(2)}x, down ${(median(download[0].samples) / median(download[1].samples)).toFixed(2)}x`,
    );
  } finally {
    for (const { vm } of vms) await vm.dispose();
    server.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
