// `smolvm serve` benchmark, one run on this machine, against one running machine (1 vCPU, 256 MiB):
//   exec:  POST /api/v1/machines/NAME/exec of `true` (a keep-alive HTTP client) vs `smolvm machine
//          exec -- true` (a CLI start per command), interleaved; target: HTTP <= 0.5x of the CLI
//   load:  requests/s of GET /api/v1/machines with autocannon on loopback, for a bounded time
//   node tools/run-ts.mjs tools/bench/serve.ts [runs=15] [seconds=10]
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import autocannon from 'autocannon';
import { WORKSPACE, median, report, timeCommand, type Series } from './lib/stats';

const runs = Number(process.argv[2] ?? 15);
const seconds = Number(process.argv[3] ?? 10);
const cli = path.join(WORKSPACE, 'apps/cli/dist/smolvm.js');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-bench-serve-'));
const env = { ...process.env, SMOLVM_HOME: path.join(work, 'home'), SMOLVM_NO_TCG_WARNING: '1' };

function must(...args: string[]): string {
  const r = spawnSync(cli, args, { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`smolvm ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

async function startServer(): Promise<{ url: string; stop(): Promise<void> }> {
  const child = spawn(cli, ['serve', 'start', '--listen', '127.0.0.1:0', '--quiet'], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`serve start exited ${code}`)));
  });
  return {
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

async function httpExec(url: string): Promise<number> {
  const start = process.hrtime.bigint();
  const res = await request(`${url}/api/v1/machines/bench/exec`, {
    method: 'POST',
    body: JSON.stringify({ command: ['true'] }),
    headers: { 'content-type': 'application/json' },
  });
  const body = (await res.body.json()) as { exitCode?: number };
  if (res.statusCode !== 200 || body.exitCode !== 0)
    throw new Error(`exec over HTTP failed: ${res.statusCode} ${JSON.stringify(body)}`);
  return Number(process.hrtime.bigint() - start) / 1e6;
}

async function main(): Promise<void> {
  if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: build first (npx nx build cli)`);
  let server: { url: string; stop(): Promise<void> } | undefined;
  try {
    must('machine', 'create', 'bench', '--cpus', '1', '--memory', '256', '--storage', '1', '--overlay', '1');
    must('machine', 'start', '--name', 'bench');
    server = await startServer();
    const cliExec = () => timeCommand([cli, 'machine', 'exec', '--name', 'bench', '--', 'true'], env);
    // Warm-up of both paths (code cache, connections), then interleaved runs.
    cliExec();
    await httpExec(server.url);
    const series: Series[] = [
      { label: 'smolvm machine exec -- true (CLI)', samples: [] },
      { label: 'POST /exec ["true"] (HTTP)', samples: [] },
    ];
    for (let i = 0; i < runs; i++) {
      series[0].samples.push(cliExec());
      series[1].samples.push(await httpExec(server.url));
    }
    report(`exec round trip on one running machine, ${runs} interleaved runs`, series);
    const ratio = median(series[1].samples) / median(series[0].samples);
    console.log(`HTTP/CLI ratio: ${ratio.toFixed(3)} (target <= 0.5)`);

    const load = await autocannon({ url: `${server.url}/api/v1/machines`, connections: 10, duration: seconds });
    console.log(
      `\nGET /api/v1/machines (1 running machine, pinged per request), autocannon 10 connections, ${seconds} s:`,
    );
    console.log(
      `  requests/s: mean ${load.requests.average.toFixed(0)}, p50 ${load.requests.p50}; latency p50 ${load.latency.p50} ms, p99 ${load.latency.p99} ms; ${load.non2xx} non-2xx, ${load.errors} errors`,
    );
    console.log(`\n${os.cpus().length} host cores; load ${os.loadavg()[0].toFixed(2)}`);
  } finally {
    await server?.stop();
    spawnSync(cli, ['machine', 'delete', 'bench', '-f'], { env });
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
