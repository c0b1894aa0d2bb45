// Persistent machines benchmark (issue "persistent machines"), one run on this machine, medians:
//   exec:  `machine exec -- true` on a running machine vs `machine run -- true` (same CLI, same size),
//          and vs `node -e 0` (the start of node itself)
//   start: `machine start` of a stopped machine, restored (warm) and --cold, against the floor
//          (QEMU + kernel + trivial init) in the same run; and `machine stop`
//   cp:    100 MB upload and download, MB/s (the reference quotes ~35-42 up, ~170 down on macOS)
//   RSS:   host memory of an idle running machine: supervisor + QEMU (VmRSS)
// All VMs: 1 vCPU, 256 MiB, 1 GiB disks. With a baseline CLI (another build's dist/smolvm.js), its
// exec latency, warm start and idle RSS are measured in the same run, interleaved, in a home of its own.
//   node tools/run-ts.mjs tools/bench/machine.ts [runs=5] [baseline-cli.js]
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { locateKernel } from '@smolvm/runtime';
import { prepareFloor } from './lib/floor';
import { WORKSPACE, median, report, runInterleaved, timeCommand, type Series } from './lib/stats';

const runs = Number(process.argv[2] ?? 5);
const cli = path.join(WORKSPACE, 'apps/cli/dist/smolvm.js');
const baseCli = process.argv[3] ? path.resolve(process.argv[3]) : undefined;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-bench-machine-'));
const env = { ...process.env, SMOLVM_HOME: path.join(work, 'home'), SMOLVM_NO_TCG_WARNING: '1' };
const baseEnv = { ...env, SMOLVM_HOME: path.join(work, 'home-base') };
// The executable itself, as users run it (its hashbang matters: see libs/common/src/ca-certs.ts).
const smolvm = (...args: string[]) => [cli, ...args];
const baseline = (...args: string[]) => [baseCli ?? cli, ...args];

function must(...args: string[]): string {
  return mustWith(cli, env, args);
}

function mustWith(cli: string, env: NodeJS.ProcessEnv, args: string[]): string {
  const r = spawnSync(cli, args, { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`smolvm ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

function mbps(bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1000);
}

/** How the machine's last start came up, from its supervisor log: a warm series must be restores. */
function lastStart(name: string, home = env.SMOLVM_HOME): 'restored' | 'booted' | undefined {
  const log = fs.readFileSync(path.join(home, 'data/machines', name, 'supervisor.log'), 'utf8');
  const ready =
    log
      .split('\n')
      .filter((l) => l.includes(' ready after '))
      .pop() ?? '';
  return ready.includes('restored from a boot snapshot') ? 'restored' : ready.includes('booted') ? 'booted' : undefined;
}

function timeStart(name: string, cold: boolean, base = false): number {
  const ms = base
    ? timeCommand(baseline('machine', 'start', '--name', name), baseEnv)
    : timeCommand(smolvm('machine', 'start', '--name', name, ...(cold ? ['--cold'] : [])), env);
  const how = lastStart(name, base ? baseEnv.SMOLVM_HOME : env.SMOLVM_HOME);
  if (how !== (cold ? 'booted' : 'restored'))
    throw new Error(`machine start${cold ? ' --cold' : ''} was ${how ?? 'not logged'}`);
  return ms;
}

async function main(): Promise<void> {
  if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: build first (npx nx build cli)`);
  const floor = await prepareFloor(locateKernel(env), work);
  try {
    must('machine', 'create', 'bench', '--cpus', '1', '--memory', '256', '--storage', '1', '--overlay', '1');
    // Warm-up: builds the agent image and its startup snapshot once.
    must('machine', 'run', '--cpus', '1', '--memory', '256', '--', 'true');
    must('machine', 'start', '--name', 'bench');
    if (baseCli) {
      for (const args of [
        ['machine', 'create', 'bench', '--cpus', '1', '--memory', '256', '--storage', '1', '--overlay', '1'],
        ['machine', 'run', '--cpus', '1', '--memory', '256', '--', 'true'],
        ['machine', 'start', '--name', 'bench'],
      ])
        mustWith(baseCli, baseEnv, args);
    }

    const execVsRun = runInterleaved(
      [
        {
          label: 'machine run -- true (boot + run + shutdown)',
          run: () => timeCommand(smolvm('machine', 'run', '--cpus', '1', '--memory', '256', '--', 'true'), env),
        },
        {
          label: 'machine exec -- true (running machine)',
          run: () => timeCommand(smolvm('machine', 'exec', '--name', 'bench', '--', 'true'), env),
        },
      ],
      runs,
    );
    report(`exec on a running machine vs an ephemeral run, ${runs} interleaved runs`, execVsRun);
    // Exec latency against the floor any node CLI has: node itself, without a CA bundle to parse
    // (as the smolvm executable starts it). Short commands: more samples.
    const { NODE_EXTRA_CA_CERTS: _ca, ...plainEnv }: NodeJS.ProcessEnv = env;
    const execVsNode = runInterleaved(
      [
        { label: 'node -e 0', run: () => timeCommand([process.execPath, '-e', '0'], plainEnv) },
        {
          label: 'machine exec -- true',
          run: () => timeCommand(smolvm('machine', 'exec', '--name', 'bench', '--', 'true'), env),
        },
        ...(baseCli
          ? [
              {
                label: 'machine exec -- true (baseline)',
                run: () => timeCommand(baseline('machine', 'exec', '--name', 'bench', '--', 'true'), baseEnv),
              },
            ]
          : []),
      ],
      runs * 4,
    );
    report(`exec latency vs the start of node, ${runs * 4} interleaved runs`, execVsNode);

    // Idle RSS: give the guest a moment to settle after the execs.
    spawnSync('sleep', ['3']);
    const idleRss = (home: string) => {
      const rec = JSON.parse(fs.readFileSync(path.join(home, 'data/machines/bench/machine.json'), 'utf8')) as {
        runtime: { pid: number; vm: { pid: number } };
      };
      const [sup, qemu] = [rssKiB(rec.runtime.pid), rssKiB(rec.runtime.vm.pid)];
      return `supervisor ${(sup / 1024).toFixed(1)} MiB + QEMU ${(qemu / 1024).toFixed(1)} MiB = ${((sup + qemu) / 1024).toFixed(1)} MiB`;
    };
    const rss = idleRss(env.SMOLVM_HOME);
    const baseRss = baseCli ? idleRss(baseEnv.SMOLVM_HOME) : undefined;
    if (baseCli) mustWith(baseCli, baseEnv, ['machine', 'stop', '--name', 'bench']);

    const big = path.join(work, 'big.bin');
    fs.writeFileSync(big, crypto.randomBytes(100 * 1024 * 1024));
    const size = fs.statSync(big).size;
    const up: number[] = [];
    const down: number[] = [];
    for (let i = 0; i < runs; i++) {
      up.push(mbps(size, timeCommand(smolvm('machine', 'cp', big, 'bench:/workspace/big.bin'), env)));
      down.push(
        mbps(size, timeCommand(smolvm('machine', 'cp', 'bench:/workspace/big.bin', path.join(work, 'back.bin')), env)),
      );
    }

    // Interleaved: the floor, a restored start and a booted one, each of a stopped machine.
    const starts: Series[] = [
      { label: 'floor: QEMU + kernel + trivial init', samples: [] },
      { label: 'machine start (warm: restored)', samples: [] },
      { label: 'machine start --cold (booted)', samples: [] },
      ...(baseCli ? [{ label: 'machine start (warm: restored), baseline', samples: [] }] : []),
    ];
    const stop: number[] = [];
    for (let i = 0; i < runs; i++) {
      starts[0].samples.push(await floor.once());
      stop.push(timeCommand(smolvm('machine', 'stop', '--name', 'bench'), env));
      starts[1].samples.push(timeStart('bench', false));
      stop.push(timeCommand(smolvm('machine', 'stop', '--name', 'bench'), env));
      starts[2].samples.push(timeStart('bench', true));
      if (baseCli) {
        starts[3].samples.push(timeStart('bench', false, true));
        mustWith(baseCli, baseEnv, ['machine', 'stop', '--name', 'bench']);
      }
    }

    console.log(`\n${os.cpus().length} host cores; load ${os.loadavg()[0].toFixed(2)}`);
    console.log(`exec/run ratio: ${(median(execVsRun[1].samples) / median(execVsRun[0].samples)).toFixed(3)}`);
    console.log(
      `cp 100 MB (whole command, medians of ${runs}): upload ${median(up).toFixed(1)} MB/s, download ${median(down).toFixed(1)} MB/s`,
    );
    report(`machine start of a stopped machine (whole command), ${runs} interleaved runs`, starts);
    const [floorMs, warmMs, coldMs, baseWarmMs] = starts.map((s) => median(s.samples));
    console.log(
      `machine start: warm/floor ${(warmMs / floorMs).toFixed(2)} (target <= 0.6), cold/floor ${(coldMs / floorMs).toFixed(2)}, warm/cold ${(warmMs / coldMs).toFixed(2)}; machine stop: median ${median(stop).toFixed(0)} ms`,
    );
    if (baseWarmMs !== undefined)
      console.log(
        `baseline machine start: warm/floor ${(baseWarmMs / floorMs).toFixed(2)}; this build's warm start / the baseline's ${(warmMs / baseWarmMs).toFixed(2)}`,
      );
    console.log(
      `idle running (restored) machine RSS: ${rss} (guest memory 256 MiB)${baseRss ? `; baseline: ${baseRss}` : ''}`,
    );
  } finally {
    spawnSync(cli, ['machine', 'delete', 'bench', '-f'], { env });
    if (baseCli) spawnSync(baseCli, ['machine', 'delete', 'bench', '-f'], { env: baseEnv });
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
