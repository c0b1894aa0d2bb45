// Boot benchmark (docs/architecture.md#guest-boot, issue "VM core"): in one run on this machine,
// interleaved, medians of
//   (a) the floor: QEMU + the same kernel + a trivial init that prints and ends the VM
//   (b) `smolvm machine run --cold -- true`, a bare VM on the base image (a boot)
//   (c) `smolvm machine run --cold --image IMAGE -- true` with a small image already in the store
//   (d) `smolvm machine run -- true` restored from the boot snapshot (issue 7: warm start; the
//       base image's root is in the snapshot, issue 16)
//   (e) `smolvm machine run --image IMAGE -- true` restored (the image-slot snapshot: root built after the restore)
// and where (b), (d) and (e) spend their time (from SMOLVM_TIMINGS). All VMs: 1 vCPU, 256 MiB.
// The CLI runs as users run it: the executable itself (see libs/common/src/ca-certs.ts). Bare VMs
// run on the Debian base tools/setup built (imported into the bench's store in the warm-up), or
// on SMOLVM_BASE_IMAGE when set.
//   node tools/run-ts.mjs tools/bench/boot.ts [runs=10]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RegistryClient, RegistryConfig } from '@smolvm/oci';
import { locateKernel } from '@smolvm/runtime';
import { startRegistry } from '../fixtures/registry';
import { buildImage, buildLayer, busyboxRootfs, pushBuiltImage } from '../fixtures/images';
import { prepareFloor } from './lib/floor';
import { WORKSPACE, median, report, type Series } from './lib/stats';

const runs = Number(process.argv[2] ?? 10);
const cli = path.join(WORKSPACE, 'apps/cli/dist/smolvm.js');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-bench-boot-'));
const env = { ...process.env, SMOLVM_HOME: path.join(work, 'home'), SMOLVM_NO_TCG_WARNING: '1' };

interface Timings {
  vmStart: number;
  prepared: number;
  spawned: number;
  agentReady: number;
  setUp: number;
  commandDone: number;
  disposed: number;
  guestUptimeAtReady: number | null;
  agentStartToReady: number | null;
  restored: boolean;
}

function smolvmRun(extra: string[], timings: Timings[]): number {
  const file = path.join(work, 'timings.json');
  fs.rmSync(file, { force: true });
  const t0 = performance.now();
  const r = spawnSync(cli, ['machine', 'run', '--cpus', '1', '--memory', '256', ...extra, '--', 'true'], {
    env: { ...env, SMOLVM_TIMINGS: file },
    encoding: 'utf8',
  });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`smolvm machine run failed (${r.status}): ${r.stderr}`);
  const t = JSON.parse(fs.readFileSync(file, 'utf8')) as Timings;
  // A series must measure what it says: a warm run that fell back to a boot is not a warm run.
  if (t.restored !== !extra.includes('--cold'))
    throw new Error(`run ${extra.join(' ')} was ${t.restored ? 'restored' : 'booted'}`);
  timings.push(t);
  return ms;
}

async function main(): Promise<void> {
  if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: build first (npx nx build cli)`);
  const kernel = locateKernel(env);
  const floor = await prepareFloor(kernel, work);

  const registry = await startRegistry({ auth: 'none' });
  try {
    const client = new RegistryClient({ config: RegistryConfig.fromSettings({}) });
    const image = (
      await pushBuiltImage(client, `${registry.host}/bench/busybox:1`, buildImage([buildLayer(busyboxRootfs())]))
    ).reference;
    await client.close();
    // Warm-up: builds the agent image, imports the base, pulls + converts the image, saves the boot
    // snapshots (all cached afterwards).
    const warmUp: Timings[] = [];
    smolvmRun(['--cold'], warmUp);
    smolvmRun(['--cold', '--image', image], warmUp);
    smolvmRun([], warmUp);
    smolvmRun(['--image', image], warmUp);

    const series: Series[] = [
      { label: '(a) floor: QEMU + kernel + trivial init', samples: [] },
      { label: '(b) smolvm machine run --cold -- true (bare)', samples: [] },
      { label: '(c) smolvm machine run --cold --image -- true', samples: [] },
      { label: '(d) smolvm machine run -- true (bare, warm)', samples: [] },
      { label: '(e) smolvm machine run --image -- true (warm)', samples: [] },
    ];
    const bare: Timings[] = [];
    const withImage: Timings[] = [];
    const warm: Timings[] = [];
    const warmImage: Timings[] = [];
    for (let i = 0; i < runs; i++) {
      series[0].samples.push(await floor.once());
      series[1].samples.push(smolvmRun(['--cold'], bare));
      series[2].samples.push(smolvmRun(['--cold', '--image', image], withImage));
      series[3].samples.push(smolvmRun([], warm));
      series[4].samples.push(smolvmRun(['--image', image], warmImage));
    }
    console.log(
      `accelerator: ${floor.accelerator ?? 'unknown'}${floor.reason ? ` (${floor.reason})` : ''}; ${os.cpus().length} host cores; load ${os.loadavg()[0].toFixed(2)}`,
    );
    report(`Boot, spawn to exit, ${runs} interleaved runs, 1 vCPU, 256 MiB`, series);

    const phase = (name: string, f: (t: Timings) => number | null) => {
      const column = (list: Timings[]) => {
        const values = list.map(f).filter((v): v is number => v !== null);
        return (values.length ? `${Math.round(median(values))} ms` : 'n/a').padStart(9);
      };
      console.log(`  ${name.padEnd(48)} ${column(bare)} ${column(warm)} ${column(warmImage)}`);
    };
    console.log(`\nWhere (b), (d) and (e) go (medians):${' '.repeat(18)}(b) cold  (d) warm (e) warm`);
    phase('CLI start (node + bundle + arg parsing)', (t) => t.vmStart);
    phase('prepare (kernel, agent image, driver probe)', (t) => t.prepared - t.vmStart);
    phase('QEMU start / restore (spawn to start() resolved)', (t) => t.spawned - t.prepared);
    phase('QEMU start / restore to agent ready', (t) => t.agentReady - t.spawned);
    phase('  guest clock at agent ready (kernel+init+node)', (t) => t.guestUptimeAtReady);
    phase('  of which agent JS start to ready', (t) => t.agentStartToReady);
    phase('setTime (+ reseed) + setup (guest root)', (t) => t.setUp - t.agentReady);
    phase('command (exec true, output, exit)', (t) => t.commandDone - t.setUp);
    phase('teardown (shutdown, VM exit)', (t) => t.disposed - t.commandDone);
    const b = median(series[1].samples);
    const c = median(series[2].samples);
    const d = median(series[3].samples);
    const a = median(series[0].samples);
    console.log(`\nratios: b/a = ${(b / a).toFixed(2)}  c/a = ${(c / a).toFixed(2)}  (target under TCG: b/a <= 2.5)`);
    const e = median(series[4].samples);
    console.log(`        d/a = ${(d / a).toFixed(2)}  d/b = ${(d / b).toFixed(2)}  (target under TCG: d/a <= 0.6)`);
    console.log(`        e/a = ${(e / a).toFixed(2)}  e/c = ${(e / c).toFixed(2)}  (with an image)`);
  } finally {
    await registry.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
