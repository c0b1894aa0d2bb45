// `machine exec -- true` on a running machine, hop by hop (issue 16: target <= 40 ms), one run, medians:
//   node -e 0                 node's own start, without a CA bundle to parse (as the smolvm executable starts it)
//   client start              the CLI until its first answer, for a machine that does not exist (no socket, no guest)
//   machine exec -- true      the whole command
// then, inside one process (no client start), each hop of an exec:
//   connect + hello           the supervisor's socket and its hello
//   ping                      client -> supervisor -> guest agent (virtio-serial) -> back: the channel, no spawn
//   exec -> pid               the request through both hops, the agent's PATH lookup and spawn, the answer back
//   pid -> exit               the command's run in the guest, its reaping and ended streams, relayed back
// and in the guest, by its own clock: fork+exec of /bin/true from a shell, over 50 runs.
// The VM: 1 vCPU, 256 MiB. With a baseline CLI (another build's dist/smolvm.js), all of it again for a
// machine of the baseline's own, in a home of its own, interleaved in the same run.
//   node tools/run-ts.mjs tools/bench/exec.ts [runs=20] [baseline-cli.js]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MachineStore } from '@smolvm/machine-store';
import { connectSupervisor } from '@smolvm/machines/connect';
import { WORKSPACE, median, report, runInterleaved, timeCommand, type Series } from './lib/stats';

const runs = Number(process.argv[2] ?? 20);
const cli = path.join(WORKSPACE, 'apps/cli/dist/smolvm.js');
const baseCli = process.argv[3] ? path.resolve(process.argv[3]) : undefined;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-bench-exec-'));
const env = { ...process.env, SMOLVM_HOME: path.join(work, 'home'), SMOLVM_NO_TCG_WARNING: '1' };

interface Side {
  label: string;
  cli: string;
  env: NodeJS.ProcessEnv;
}
const sides: Side[] = [
  { label: '', cli, env },
  ...(baseCli
    ? [{ label: ' (baseline)', cli: baseCli, env: { ...env, SMOLVM_HOME: path.join(work, 'home-base') } }]
    : []),
];

function must(side: Side, ...args: string[]): string {
  const r = spawnSync(side.cli, args, { env: side.env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`smolvm ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** Wall time of a command that is expected to fail (exit 1 with its one line). */
function timeFailing(argv: string[], cliEnv: NodeJS.ProcessEnv): number {
  const start = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { env: cliEnv, stdio: 'ignore' });
  if (r.status !== 1) throw new Error(`${argv.join(' ')} exited ${r.status}, not 1`);
  return Number(process.hrtime.bigint() - start) / 1e6;
}

const now = () => Number(process.hrtime.bigint()) / 1e6;

async function hops(side: Side): Promise<Series[]> {
  // The store reads SMOLVM_HOME from this process's environment.
  process.env.SMOLVM_HOME = side.env.SMOLVM_HOME;
  const socket = new MachineStore().get('bench').runtime?.socket;
  if (!socket) throw new Error('machine bench has no supervisor socket');
  const series: Series[] = ['connect + hello', 'ping (supervisor -> agent -> back)', 'exec -> pid', 'pid -> exit'].map(
    (label) => ({ label: label + side.label, samples: [] }),
  );
  for (let i = 0; i <= runs; i++) {
    const t0 = now();
    const client = await connectSupervisor(socket);
    try {
      const t1 = now();
      await client.ping();
      const t2 = now();
      const session = await client.exec({ argv: ['true'], env: {}, stdin: false });
      const t3 = now();
      session.stdout.resume();
      session.stderr.resume();
      const status = await session.exit;
      if (status.code !== 0) throw new Error(`true exited ${String(status.code)}`);
      const t4 = now();
      // The first round warms up.
      if (i > 0) [t1 - t0, t2 - t1, t3 - t2, t4 - t3].forEach((ms, j) => series[j].samples.push(ms));
    } finally {
      client.close();
    }
  }
  return series;
}

/** fork+exec of /bin/true in the guest, per run, by the guest's clock (bash's `time` over 50 runs). */
function guestForkExecMs(side: Side): number {
  const r = spawnSync(
    side.cli,
    [
      'machine',
      'exec',
      '--name',
      'bench',
      '--',
      'bash',
      '-c',
      'TIMEFORMAT=%R; time (for i in {1..50}; do /bin/true; done)',
    ],
    { env: side.env, encoding: 'utf8' },
  );
  const seconds = Number(r.stderr.trim().split('\n').pop());
  if (r.status !== 0 || !Number.isFinite(seconds)) throw new Error(`the in-guest timing failed: ${r.stderr}`);
  return (seconds * 1000) / 50;
}

async function main(): Promise<void> {
  if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: build first (npx nx build cli)`);
  try {
    for (const side of sides) {
      must(side, 'machine', 'create', 'bench', '--cpus', '1', '--memory', '256', '--storage', '1', '--overlay', '1');
      must(side, 'machine', 'start', '--name', 'bench');
    }
    const { NODE_EXTRA_CA_CERTS: _ca, ...plainEnv }: NodeJS.ProcessEnv = env;
    const whole = runInterleaved(
      [
        { label: 'node -e 0', run: () => timeCommand([process.execPath, '-e', '0'], plainEnv) },
        ...sides.flatMap((side) => [
          {
            label: `client start (machine exec, no such machine)${side.label}`,
            run: () => timeFailing([side.cli, 'machine', 'exec', '--name', 'nosuch', '--', 'true'], side.env),
          },
          {
            label: `machine exec -- true${side.label}`,
            run: () => timeCommand([side.cli, 'machine', 'exec', '--name', 'bench', '--', 'true'], side.env),
          },
        ]),
      ],
      runs,
      2,
    );
    report(`machine exec -- true vs the start of node, ${runs} interleaved runs`, whole);
    const m = (s: Series) => median(s.samples);
    const node = m(whole[0]);
    const summary: string[] = [];
    for (const [k, side] of sides.entries()) {
      const inProcess = await hops(side);
      report(`the hops of one exec${side.label}, in one process, ${runs} runs`, inProcess, 'ms', inProcess[2]);
      const guest = median(Array.from({ length: 5 }, () => guestForkExecMs(side)));
      console.log(
        `in the guest${side.label}: fork+exec of /bin/true from bash, median of 5 x 50: ${guest.toFixed(1)} ms`,
      );
      const [client, exec] = [m(whole[1 + 2 * k]), m(whole[2 + 2 * k])];
      summary.push(
        `exec${side.label} ${exec.toFixed(1)} ms = ${(exec / node).toFixed(2)}x node -e 0 (target 40 ms); client start ${(client - node).toFixed(1)} ms over node; connect ${m(inProcess[0]).toFixed(1)}, exec -> pid ${m(inProcess[2]).toFixed(1)}, pid -> exit ${m(inProcess[3]).toFixed(1)}, channel round trip ${m(inProcess[1]).toFixed(1)}; guest fork+exec ${guest.toFixed(1)}`,
      );
    }
    console.log(`\nnode -e 0 ${node.toFixed(1)} ms\n${summary.join('\n')}`);
    console.log(`${os.cpus().length} host cores; load ${os.loadavg()[0].toFixed(2)}`);
  } finally {
    for (const side of sides) spawnSync(side.cli, ['machine', 'delete', 'bench', '-f'], { env: side.env });
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
