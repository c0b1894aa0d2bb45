// Snapshots and forks benchmark (issue 20), one run on this machine:
//   create: `machine snapshot create` of a running machine with 100 MB written to /workspace:
//           time, how long the machine was paused, and the snapshot's size on disk
//   fork:   fork to first exec against a warm `machine run -- true` in the same run (target <= 1.5x),
//           two ways: `machine create --from-snapshot` + `machine start` + `machine exec -- true`
//           (three CLI processes), and `machine fork SNAP NEW` + `machine exec -- true` (two: the
//           one-step form, what a user scripting forks runs)
//   memory: 10 forks' QEMU processes, total RSS and PSS (shared pages counted once), against 10
//           fresh machines of the same shape started the usual way (warm, from a boot snapshot)
// All VMs: 1 vCPU, 256 MiB, 1 GiB disks. With another CLI build (e.g. main's dist/smolvm.js, copied),
// its warm run and create + start + exec are interleaved with this build's in the same loop, each
// build's ratio against its own warm run (a before/after under the same load).
//   node tools/run-ts.mjs tools/bench/snapshot.ts [runs=3] [copies=10] [other-cli.js]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WORKSPACE, report, runInterleaved, timeCommand } from './lib/stats';

const runs = Number(process.argv[2] ?? 3);
const copies = Number(process.argv[3] ?? 10);
const cli = path.join(WORKSPACE, 'apps/cli/dist/smolvm.js');
const otherCli = process.argv[4] ? path.resolve(process.argv[4]) : undefined;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-bench-snap-'));
const home = path.join(work, 'home');
const env = { ...process.env, SMOLVM_HOME: home, SMOLVM_NO_TCG_WARNING: '1' };
const SHAPE = ['--cpus', '1', '--memory', '256'];
const DISKS = ['--storage', '1', '--overlay', '1'];

function must(...args: string[]): string {
  return mustWith(cli, ...args);
}

function mustWith(build: string, ...args: string[]): string {
  const r = spawnSync(build, args, { env, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`smolvm ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** QEMU processes of this benchmark's machines, by the home their command line names. */
function qemuPids(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8');
        return cmd.includes('qemu-system') && cmd.includes(home);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** Total RSS and PSS of the processes, in MiB (PSS: a page shared by n processes counts 1/n). */
function memoryOf(pids: number[]): { rssMiB: number; pssMiB: number } {
  let rss = 0;
  let pss = 0;
  for (const pid of pids) {
    const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    rss += Number(/^Rss:\s+(\d+) kB/m.exec(text)?.[1] ?? NaN);
    pss += Number(/^Pss:\s+(\d+) kB/m.exec(text)?.[1] ?? NaN);
  }
  return { rssMiB: rss / 1024, pssMiB: pss / 1024 };
}

function startAll(names: string[]): void {
  for (const n of names) must('machine', 'start', '--name', n);
}

function deleteAll(names: string[]): void {
  for (const n of names) must('machine', 'delete', n, '-f');
}

async function main(): Promise<void> {
  if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: build first (npx nx build cli)`);
  try {
    must('machine', 'create', 'src', ...SHAPE, ...DISKS);
    // The first start builds the agent image and the boot snapshot of this shape.
    must('machine', 'start', '--name', 'src');
    must(
      'machine',
      'exec',
      '--name',
      'src',
      '--',
      '/bin/sh',
      '-c',
      'head -c 100000000 /dev/urandom > /workspace/blob && sync',
    );

    const t0 = performance.now();
    const created = JSON.parse(must('machine', 'snapshot', 'create', 'src', '--json')) as {
      id: string;
      sizeBytes: number;
      pausedMs: number;
    };
    const createMs = performance.now() - t0;
    console.log(`\nsnapshot create of a running machine (256 MiB RAM, 100 MB written to /workspace), one run`);
    console.log(
      `  whole command ${createMs.toFixed(0)} ms; machine paused ${created.pausedMs} ms; size on disk ${(created.sizeBytes / 1e6).toFixed(1)} MB`,
    );

    let n = 0;
    /** Wall time of `steps` (given the new machine's name), the machine deleted after. */
    const timedFork = (steps: (name: string) => void) => () => {
      const name = `f${++n}`;
      const start = process.hrtime.bigint();
      steps(name);
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      must('machine', 'delete', name, '-f');
      return ms;
    };
    const forkAndExecWith = (build: string) =>
      timedFork((name) => {
        mustWith(build, 'machine', 'create', name, '--from-snapshot', created.id);
        mustWith(build, 'machine', 'start', '--name', name);
        mustWith(build, 'machine', 'exec', '--name', name, '--', 'true');
      });
    const warmRunWith = (build: string) => () => timeCommand([build, 'machine', 'run', ...SHAPE, '--', 'true'], env);
    const oneStepForkAndExec = timedFork((name) => {
      must('machine', 'fork', created.id, name);
      must('machine', 'exec', '--name', name, '--', 'true');
    });
    const series = runInterleaved(
      [
        { label: 'machine run -- true (warm)', run: warmRunWith(cli) },
        { label: 'fork: create --from-snapshot + start + exec true', run: forkAndExecWith(cli) },
        { label: 'fork: fork SNAP NEW + exec true', run: oneStepForkAndExec },
        ...(otherCli
          ? [
              { label: 'other build: machine run -- true (warm)', run: warmRunWith(otherCli) },
              { label: 'other build: create --from-snapshot + start + exec true', run: forkAndExecWith(otherCli) },
            ]
          : []),
      ],
      runs,
    );
    report(`fork to first exec vs a warm machine run, ${runs} interleaved runs (target <= 1.5x)`, series.slice(0, 3));
    if (otherCli) {
      report(`the same with ${otherCli}, in the same loop`, series.slice(3));
      // The step without a VM (snapshot verify + disk layers + record), where the builds differ most.
      const createWith = (build: string) =>
        timedFork((name) => mustWith(build, 'machine', 'create', name, '--from-snapshot', created.id));
      report(
        `machine create --from-snapshot alone, ${runs * 2} interleaved runs`,
        runInterleaved(
          [
            { label: `other build (${otherCli})`, run: createWith(otherCli) },
            { label: 'this build', run: createWith(cli) },
          ],
          runs * 2,
        ),
      );
    }

    const forks = Array.from({ length: copies }, (_, i) => `m${i + 1}`);
    for (const f of forks) must('machine', 'create', f, '--from-snapshot', created.id);
    startAll(forks);
    const forked = memoryOf(qemuPids().filter((p) => !srcPid().includes(p)));
    deleteAll(forks);
    const fresh = Array.from({ length: copies }, (_, i) => `c${i + 1}`);
    for (const f of fresh) must('machine', 'create', f, ...SHAPE, ...DISKS);
    startAll(fresh);
    const plain = memoryOf(qemuPids().filter((p) => !srcPid().includes(p)));
    deleteAll(fresh);
    console.log(`\nhost memory of ${copies} idle machines' QEMU processes (256 MiB guests)`);
    console.log(
      `  ${copies} fresh machines (warm start)  RSS ${plain.rssMiB.toFixed(0)} MiB  PSS ${plain.pssMiB.toFixed(0)} MiB (baseline)`,
    );
    console.log(
      `  ${copies} forks of the snapshot        RSS ${forked.rssMiB.toFixed(0)} MiB  PSS ${forked.pssMiB.toFixed(0)} MiB  ratio RSS ${(forked.rssMiB / plain.rssMiB).toFixed(2)}x, PSS ${(forked.pssMiB / plain.pssMiB).toFixed(2)}x`,
    );
  } finally {
    spawnSync(cli, ['machine', 'delete', 'src', '-f'], { env });
    for (const pid of qemuPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** The source machine's QEMU, left out of the copies' totals. */
function srcPid(): number[] {
  const record = JSON.parse(fs.readFileSync(path.join(home, 'data', 'machines', 'src', 'machine.json'), 'utf8')) as {
    runtime?: { vm?: { pid: number } };
  };
  return record.runtime?.vm ? [record.runtime.vm.pid] : [];
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
