// Load benchmark (issue 16 item 6): N identical `machine run -- echo rN` started at once, as a CI
// system would, with and without early restores (SMOLVM_NO_EARLY_START=1), in one run on this
// machine. For each case: the wall time until the last run ended, per-run times (median, p90,
// max), and every run that failed or printed the wrong thing (its exit code and stderr's last
// line). All VMs: bare, 1 vCPU, 256 MiB, restored from the boot snapshot saved by the warm-up.
// The host's load drifts (other work on it): with rounds=R each size runs R times, early starts
// off first in odd rounds and on first in even ones, so drift does not favour one case.
//   node tools/run-ts.mjs tools/bench/load.ts [rounds=R] [N...] (default: rounds=1, 10 30 60)
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WORKSPACE, median, quantile } from './lib/stats';

const roundsArg = process.argv.slice(2).find((a) => a.startsWith('rounds='));
const rounds = roundsArg ? Number(roundsArg.slice('rounds='.length)) : 1;
const sizes = process.argv
  .slice(2)
  .filter((a) => a !== roundsArg)
  .map(Number);
const cli = path.join(WORKSPACE, 'apps/cli/dist/smolvm.js');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-bench-load-'));
const baseEnv = { ...process.env, SMOLVM_HOME: path.join(work, 'home'), SMOLVM_NO_TCG_WARNING: '1' };
const runArgs = ['machine', 'run', '--cpus', '1', '--memory', '256', '--'];

interface Outcome {
  ms: number;
  ok: boolean;
  detail: string;
}

function runOnce(i: number, env: NodeJS.ProcessEnv): Promise<Outcome> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(cli, [...runArgs, 'echo', `r${i}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code, signal) => {
      const ok = code === 0 && out === `r${i}\n`;
      const last = err.trim().split('\n').pop() ?? '';
      resolve({
        ms: performance.now() - t0,
        ok,
        detail: ok
          ? ''
          : `exit ${code ?? signal}, stdout ${JSON.stringify(out)}, stderr ${last ? JSON.stringify(last) : '(none)'}`,
      });
    });
  });
}

async function round(n: number, early: boolean): Promise<void> {
  const env = early ? baseEnv : { ...baseEnv, SMOLVM_NO_EARLY_START: '1' };
  // One run first, so the early-start recipe for this invocation exists (or not) as it would in CI.
  await runOnce(0, env);
  const load = os.loadavg()[0];
  const t0 = performance.now();
  const outcomes = await Promise.all(Array.from({ length: n }, (_, i) => runOnce(i, env)));
  const wall = (performance.now() - t0) / 1000;
  const times = outcomes.map((o) => o.ms / 1000);
  const failed = outcomes.filter((o) => !o.ok);
  console.log(
    `N=${String(n).padStart(3)} early starts ${early ? 'on ' : 'off'}: all done in ${wall.toFixed(1)} s (${(wall / n).toFixed(2)} s per run); ` +
      `per run median ${median(times).toFixed(1)} s, p90 ${quantile(times, 0.9).toFixed(1)} s, max ${Math.max(...times).toFixed(1)} s; ` +
      `${n - failed.length}/${n} correct; load before ${load.toFixed(1)}`,
  );
  for (const f of failed) console.log(`    failed: ${f.detail}`);
}

async function main(): Promise<void> {
  if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: build first (npx nx build cli)`);
  try {
    // Warm-up: the agent image, its startup snapshot and the boot snapshot of this shape.
    const warm = spawnSync(cli, [...runArgs, 'true'], { env: baseEnv, encoding: 'utf8' });
    if (warm.status !== 0) throw new Error(`warm-up run failed: ${warm.stderr}`);
    console.log(`${os.cpus().length} host cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB`);
    for (const n of sizes.length ? sizes : [10, 30, 60]) {
      for (let r = 0; r < rounds; r++) for (const early of r % 2 ? [true, false] : [false, true]) await round(n, early);
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

void main();
