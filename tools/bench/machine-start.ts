// Warm `machine start` only (issue 16, item 2), one run on this machine, medians: the floor (QEMU +
// kernel + trivial init), a restored `machine start` of a stopped machine with this build, and with
// a baseline CLI (another build's dist/smolvm.js) in a home of its own, interleaved; then where this
// build's starts went, from the supervisor log's `ready after` lines (medians of each phase), and
// the CPU time each process of a start used (the CLI, the supervisor and QEMU until it is ready):
// more CPU than wall time on this host's cores means the start is CPU-bound.
// 1 vCPU, 256 MiB, 1 GiB disks, as tools/bench/machine.ts.
//   node tools/run-ts.mjs tools/bench/machine-start.ts [runs=7] [baseline-cli.js]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { locateKernel } from '@smolvm/runtime';
import { prepareFloor } from './lib/floor';
import { WORKSPACE, median, report, timeCommand, type Series } from './lib/stats';

const runs = Number(process.argv[2] ?? 7);
const cli = path.join(WORKSPACE, 'apps/cli/dist/smolvm.js');
const baseCli = process.argv[3] ? path.resolve(process.argv[3]) : undefined;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-bench-mstart-'));
const env = { ...process.env, SMOLVM_HOME: path.join(work, 'home'), SMOLVM_NO_TCG_WARNING: '1' };
const baseEnv = { ...env, SMOLVM_HOME: path.join(work, 'home-base') };
const CREATE = ['machine', 'create', 'bench', '--cpus', '1', '--memory', '256', '--storage', '1', '--overlay', '1'];

function must(cliPath: string, e: NodeJS.ProcessEnv, args: string[]): void {
  const r = spawnSync(cliPath, args, { env: e, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`smolvm ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
}

// /proc reports CPU times in clock ticks of USER_HZ, which Linux fixes at 100 on x86 and arm64.
const CLK_TCK = 100;

/** CPU time (user + system, ms) of `pid` (its stat's fields 14, 15), or of this process's reaped children (16, 17). */
function cpuMs(pid: number | 'children'): number {
  const stat = fs.readFileSync(`/proc/${pid === 'children' ? 'self' : pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // from field 3 on
  const [a, b] = pid === 'children' ? [13, 14] : [11, 12];
  return ((Number(fields[a]) + Number(fields[b])) * 1000) / CLK_TCK;
}

/** The last start's `ready after` line of the supervisor log. */
function lastReady(home: string): string {
  const log = fs.readFileSync(path.join(home, 'data/machines/bench/supervisor.log'), 'utf8');
  return (
    log
      .split('\n')
      .filter((l) => l.includes(' ready after '))
      .pop() ?? ''
  );
}

function timeStart(cliPath: string, e: NodeJS.ProcessEnv, phases?: Map<string, number[]>): number {
  const cliBefore = cpuMs('children');
  const ms = timeCommand([cliPath, 'machine', 'start', '--name', 'bench'], e);
  if (phases) {
    const add = (k: string, v: number) => phases.set(k, [...(phases.get(k) ?? []), v]);
    const record = JSON.parse(
      fs.readFileSync(path.join(e.SMOLVM_HOME ?? '', 'data/machines/bench/machine.json'), 'utf8'),
    ) as { runtime: { pid: number; vm: { pid: number } } };
    add('cpu: CLI', cpuMs('children') - cliBefore);
    add('cpu: supervisor', cpuMs(record.runtime.pid));
    add('cpu: QEMU', cpuMs(record.runtime.vm.pid));
    add('wall', Math.round(ms));
  }
  const ready = lastReady(e.SMOLVM_HOME ?? '');
  if (!ready.includes('restored from a boot snapshot')) throw new Error(`machine start was not a restore: ${ready}`);
  for (const m of ready.matchAll(/(process|prepare|restore|setup|init) (\d+)/g)) {
    if (!phases) break;
    phases.set(m[1], [...(phases.get(m[1]) ?? []), Number(m[2])]);
  }
  const lead = /started early, (\d+) ms ahead/.exec(ready);
  if (lead && phases) phases.set('early lead', [...(phases.get('early lead') ?? []), Number(lead[1])]);
  must(cliPath, e, ['machine', 'stop', '--name', 'bench']);
  return ms;
}

async function main(): Promise<void> {
  if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: build first (npx nx build cli)`);
  const floor = await prepareFloor(locateKernel(env), work);
  const homes: Array<[string, NodeJS.ProcessEnv]> = [
    [cli, env],
    ...(baseCli ? [[baseCli, baseEnv] as [string, NodeJS.ProcessEnv]] : []),
  ];
  try {
    for (const [c, e] of homes) {
      must(c, e, CREATE);
      // Warm-up: the agent image and the snapshot of the machine's shape, then the start's recipe.
      must(c, e, ['machine', 'start', '--name', 'bench']);
      must(c, e, ['machine', 'stop', '--name', 'bench']);
      must(c, e, ['machine', 'start', '--name', 'bench']);
      must(c, e, ['machine', 'stop', '--name', 'bench']);
    }
    const series: Series[] = [
      { label: 'floor: QEMU + kernel + trivial init', samples: [] },
      { label: 'machine start (warm: restored)', samples: [] },
      ...(baseCli ? [{ label: 'machine start (warm: restored), baseline', samples: [] }] : []),
    ];
    const phases = new Map<string, number[]>();
    for (let i = 0; i < runs; i++) {
      series[0].samples.push(await floor.once());
      series[1].samples.push(timeStart(cli, env, phases));
      if (baseCli) series[2].samples.push(timeStart(baseCli, baseEnv));
    }
    console.log(`\n${os.cpus().length} host cores; load ${os.loadavg()[0].toFixed(2)}`);
    report(`machine start of a stopped machine (whole command), ${runs} interleaved runs`, series);
    const [floorMs, warmMs, baseMs] = series.map((s) => median(s.samples));
    console.log(
      `warm/floor ${(warmMs / floorMs).toFixed(2)} (target <= 0.6)${baseMs !== undefined ? `; baseline warm/floor ${(baseMs / floorMs).toFixed(2)}; this build / baseline ${(warmMs / baseMs).toFixed(2)}` : ''}`,
    );
    console.log(
      `this build's phases (supervisor log) and CPU time per process, medians, ms (${os.cpus().length} cores): ${[...phases].map(([k, v]) => `${k} ${Math.round(median(v))}`).join(', ')}`,
    );
  } finally {
    for (const [c, e] of homes) spawnSync(c, ['machine', 'delete', 'bench', '-f'], { env: e });
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
