// `ctr run --rm IMAGE id true` through containerd with the smolvm shim against runc (containerd's
// default runtime, its runc v2 shim) in one run, interleaved, on a private containerd (temp root,
// state and socket; the shim on its PATH) and a busybox image from the local test registry.
// Where the time goes comes from containerd's own event timestamps (`ctr events`): container
// create -> task create (rootfs + VM/runc create) -> task start -> task exit -> task delete, and
// for smolvm the shim's log line of each task (rootfs mount, VM spawn, agent ready, set-up).
// Needs root and a build (apps/containerd-shim/dist).
//   node tools/run-ts.mjs tools/bench/shim.ts [runs=5]
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RegistryClient, RegistryConfig } from '@smolvm/oci';
import { startRegistry } from '../fixtures/registry';
import { buildImage, buildLayer, busyboxRootfs, pushBuiltImage } from '../fixtures/images';
import { WORKSPACE, median, report, runInterleaved } from './lib/stats';

const LAUNCHER = path.join(WORKSPACE, 'apps', 'containerd-shim', 'bin', 'containerd-shim-smolvm-v2');

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 5);
  if (!fs.existsSync(path.join(WORKSPACE, 'apps', 'containerd-shim', 'dist', 'containerd-shim-smolvm-v2.js'))) {
    throw new Error('build the shim first: NX_DAEMON=false npx nx run containerd-shim:build');
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-bench-shim-'));
  const registry = await startRegistry({ dir: path.join(work, 'registry') });
  const bin = path.join(work, 'bin');
  fs.mkdirSync(bin);
  fs.symlinkSync(LAUNCHER, path.join(bin, 'containerd-shim-smolvm-v2'));
  const sock = path.join(work, 'c.sock');
  const fifoDir = path.join(work, 'fifo');
  fs.mkdirSync(fifoDir);
  fs.writeFileSync(
    path.join(work, 'config.toml'),
    [
      `version = 2`,
      `root = "${work}/root"`,
      `state = "${work}/state"`,
      `disabled_plugins = ["io.containerd.grpc.v1.cri"]`,
      `[grpc]`,
      `  address = "${sock}"`,
    ].join('\n') + '\n',
  );
  const logFile = path.join(work, 'containerd.log');
  const containerd = spawn('containerd', ['--config', path.join(work, 'config.toml')], {
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
    stdio: ['ignore', 'ignore', fs.openSync(logFile, 'w')],
  });
  let events: ReturnType<typeof spawn> | undefined;
  try {
    const ctr = (args: string[]) => spawnSync('ctr', ['-a', sock, ...args], { encoding: 'utf8' });
    for (let i = 0; ctr(['version']).status !== 0; i++) {
      if (i > 100) throw new Error('containerd did not come up');
      await new Promise((r) => setTimeout(r, 100));
    }
    const client = new RegistryClient({ config: RegistryConfig.fromSettings({}) });
    const { reference } = await pushBuiltImage(
      client,
      `${registry.host}/smolvm-test/busybox:latest`,
      buildImage([buildLayer(busyboxRootfs())], { Cmd: ['/bin/sh'] }),
    );
    await client.close();
    if (ctr(['image', 'pull', '--plain-http', reference]).status !== 0) throw new Error('ctr image pull failed');
    let eventText = '';
    events = spawn('ctr', ['-a', sock, 'events']);
    events.stdout!.on('data', (d: Buffer) => (eventText += d.toString()));

    let n = 0;
    const ids: Record<string, string[]> = { runc: [], smolvm: [] };
    const once = (runtime: 'runc' | 'smolvm') => () => {
      const id = `${runtime}-${n++}`;
      ids[runtime].push(id);
      const extra =
        runtime === 'smolvm' ? ['--runtime', 'io.containerd.smolvm.v2', '--memory-limit', String(256 << 20)] : [];
      const start = process.hrtime.bigint();
      const r = ctr(['run', '--rm', '--fifo-dir', fifoDir, ...extra, reference, id, 'true']);
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      if (r.status !== 0) throw new Error(`ctr run (${runtime}) exited ${r.status}: ${r.stderr.trim()}`);
      return ms;
    };
    const series = runInterleaved(
      [
        { label: 'runc: ctr run --rm IMAGE id true', run: once('runc') },
        { label: 'smolvm: ctr run --rm --runtime io.containerd.smolvm.v2 IMAGE id true', run: once('smolvm') },
      ],
      runs,
    );
    report(`containerd task start to finish, ${runs} runs each (1 warm-up)`, series);
    await new Promise((r) => setTimeout(r, 1000));

    // Phases from containerd's event timestamps, medians over the measured runs.
    const at = (id: string, topic: string): number | undefined => {
      const line = eventText
        .split('\n')
        .find(
          (l) =>
            l.includes(` ${topic} `) &&
            l.includes(`"${topic.startsWith('/containers') ? 'id' : 'container_id'}":"${id}"`),
        );
      // "2026-12-07 03:03:24.044123456 +0000 UTC ...": containerd's own stamps have nanoseconds,
      // the shim's milliseconds.
      const m = line ? /^(\S+) (\d\d:\d\d:\d\d)(\.\d+)? \+0000 UTC/.exec(line) : null;
      return m ? Date.parse(`${m[1]}T${m[2]}${(m[3] ?? '').slice(0, 4)}Z`) : undefined;
    };
    const phases = [
      ['container create -> task created (rootfs, VM or runc create)', '/containers/create', '/tasks/create'],
      ['task created -> started (process exec)', '/tasks/create', '/tasks/start'],
      ['started -> exited (true runs)', '/tasks/start', '/tasks/exit'],
      ['exited -> task deleted (teardown)', '/tasks/exit', '/tasks/delete'],
    ] as const;
    console.log('\nwhere the time goes (medians of containerd event timestamps, ms)');
    for (const runtime of ['runc', 'smolvm'] as const) {
      const measured = ids[runtime].slice(1);
      const cells = phases.map(([label, from, to]) => {
        const d = measured.map((id) => (at(id, to) ?? NaN) - (at(id, from) ?? NaN)).filter((x) => Number.isFinite(x));
        return `${label}: ${d.length ? median(d).toFixed(0) : 'n/a'}`;
      });
      console.log(`  ${runtime}\n    ${cells.join('\n    ')}`);
    }
    const timings = fs
      .readFileSync(logFile, 'utf8')
      .split('\n')
      .filter((l) => l.includes('timings rootfs='));
    const field = (name: string) =>
      median(timings.map((l) => Number(new RegExp(`${name}=(\\d+)`).exec(l)?.[1])).filter((x) => Number.isFinite(x)));
    if (timings.length)
      console.log(
        `  smolvm shim, inside task create: rootfs mount ${field('rootfs')}, QEMU spawned ${field('spawned')}, agent ready ${field('agentReady')}, root set up ${field('setUp')} (ms from VM start)`,
      );
  } finally {
    events?.kill();
    containerd.kill('SIGTERM');
    await new Promise((r) => containerd.once('exit', r));
    await registry.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
