// Packs, in one run (medians; every comparison against a baseline measured in the same run):
//  1. `pack create` of a ~50 MB image already in the store, against copying the pack it writes (cp);
//  2. the executable + .smolmachine size against the image's compressed size, and what the rest is;
//  3. `./my-app run -- true` warm against `smolvm machine run --image IMG -- true` warm;
//  4. `machine create --from` + start (first, and with its sections cached) against
//     `machine create --image` + start, image store empty.
// With a baseline CLI (another build's dist/smolvm.js, e.g. main's), in a home of its own: its
// pack create (1), the size of its pack (2), its packed executable's warm run (3) and its first
// `create --from` + start of its own pack (4), interleaved with ours.
// The CLI runs as users run it: the executable itself, with early starts (default), and without
// NODE_EXTRA_CA_CERTS in the environment (a proxy's CA bundle, set on some hosts, this workplace
// among them): a single executable such as the packed one parses it as it starts (~45 ms here)
// while the CLI's hashbang defers it (libs/common/src/ca-certs.ts), so with it set, one side pays
// and the other does not. SMOLVM_BENCH_NODE_CLI=1 runs the CLI as `node smolvm.js`, with
// SMOLVM_NO_EARLY_START=1 and the environment as it is, as this bench did before 2026-12-08.
//   node tools/run-ts.mjs tools/bench/pack.ts [runs=3] [baseline-cli.js]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RegistryClient, RegistryConfig } from '@smolvm/oci';
import { PackFile } from '@smolvm/pack';
import { startRegistry } from '../fixtures/registry';
import { BUSYBOX, bigImage, buildImage, buildLayer, busyboxRootfs, pushBuiltImage } from '../fixtures/images';
import { WORKSPACE, median, report, runInterleaved, timeCommand } from './lib/stats';

const CLI = path.join(WORKSPACE, 'apps/cli/dist/smolvm.js');
const MB = 1e6;
const NODE_CLI = process.env.SMOLVM_BENCH_NODE_CLI === '1';
/** The command line that runs `cliPath` (see the top). */
const run = (cliPath: string, ...args: string[]): string[] =>
  NODE_CLI ? [process.execPath, cliPath, ...args] : [cliPath, ...args];

function cli(args: string[], env: NodeJS.ProcessEnv, cliPath = CLI): void {
  const [file, ...rest] = run(cliPath, ...args);
  const r = spawnSync(file, rest, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`smolvm ${args.join(' ')} exited ${r.status}: ${r.stderr.toString().trim()}`);
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 3);
  const baseCli = process.argv[3] ? path.resolve(process.argv[3]) : undefined;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-bench-pack-'));
  const registry = await startRegistry({ dir: path.join(work, 'registry') });
  const home = path.join(work, 'home');
  const { NODE_EXTRA_CA_CERTS: _ca, ...withoutCa } = process.env;
  const env = {
    ...(NODE_CLI ? process.env : withoutCa),
    SMOLVM_HOME: home,
    SMOLVM_NO_TCG_WARNING: '1',
    ...(NODE_CLI ? { SMOLVM_NO_EARLY_START: '1' } : {}),
  };
  try {
    const big = bigImage(50);
    const image = buildImage([buildLayer(busyboxRootfs(BUSYBOX)), ...big.layers], {
      Cmd: ['/bin/sh'],
      Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'],
    });
    const compressed = image.layers.reduce((n, l) => n + l.bytes.length, image.config.length);
    const client = new RegistryClient({ config: RegistryConfig.fromSettings({}) });
    const { reference } = await pushBuiltImage(client, `${registry.host}/smolvm-test/big:latest`, image);
    await client.close();
    cli(['image', 'pull', '-I', reference], env);
    // The baseline's caches and snapshots live in a home of their own: in one cache, its keys and
    // ours would evict each other's snapshot of the same shape.
    const baseEnv = { ...env, SMOLVM_HOME: path.join(work, 'home-base') };
    if (baseCli) cli(['image', 'pull', '-I', reference], baseEnv, baseCli);

    // 1. pack create, image in the store.
    const out = path.join(work, 'out');
    fs.mkdirSync(out);
    let n = 0;
    const app = path.join(out, 'my-app');
    const baseApp = path.join(out, 'base-app');
    const packCreate = (cliPath: string, output: string, cliEnv: NodeJS.ProcessEnv) => () =>
      timeCommand(
        run(cliPath, 'pack', 'create', '--image', reference, '--cpus', '1', '--memory', '512', '-o', output, '--quiet'),
        cliEnv,
      );
    const copy = () => {
      const target = path.join(out, `copy-${n++}`);
      const ms = timeCommand(['cp', `${app}.smolmachine`, target]);
      fs.rmSync(target);
      return ms;
    };
    // pack create runs first in each round: the copy needs its output.
    const series1 = runInterleaved(
      [
        { label: 'smolvm pack create (~50 MB image)', run: packCreate(CLI, app, env) },
        { label: 'cp of the .smolmachine (floor)', run: copy },
        ...(baseCli
          ? [{ label: 'smolvm pack create (~50 MB image), baseline', run: packCreate(baseCli, baseApp, baseEnv) }]
          : []),
      ],
      runs,
      0,
    );
    report(
      `1. pack create of a ${(compressed / MB).toFixed(1)} MB (compressed) image already in the store, ${runs} runs`,
      series1,
      'ms',
      series1[1],
    );

    // 2. Sizes.
    const node = fs.statSync(process.execPath).size;
    const sizes = (exe: string, title: string): void => {
      const pack = PackFile.open(`${exe}.smolmachine`);
      const stubBytes = fs.statSync(exe).size;
      const payload = fs.statSync(`${exe}.smolmachine`).size;
      const sizeOf = (name: 'kernel' | 'agent' | 'rootfs') => pack.section(name)?.size ?? 0;
      const kernel = pack.section('kernel');
      const overhead = stubBytes + payload - compressed;
      console.log(`\n2. Sizes${title}`);
      console.log(`  image, compressed layers + config:  ${(compressed / MB).toFixed(1)} MB`);
      console.log(
        `  my-app (stub) + my-app.smolmachine: ${((stubBytes + payload) / MB).toFixed(1)} MB  (${((stubBytes + payload) / compressed).toFixed(2)}x the image)`,
      );
      console.log(
        `  overhead:                           ${(overhead / MB).toFixed(1)} MB = ${(overhead / node).toFixed(2)}x the Node runtime (${(node / MB).toFixed(1)} MB)`,
      );
      console.log(
        `    stub ${(stubBytes / MB).toFixed(1)} MB (${stubBytes > node / 2 ? 'a single executable: Node inside' : 'a Node script'}), kernel ${(sizeOf('kernel') / MB).toFixed(1)} MB${kernel?.uncompressed_size ? ` (${kernel.compression} of ${(kernel.uncompressed_size / MB).toFixed(1)} MB)` : ''}, agent image ${(sizeOf('agent') / MB).toFixed(1)} MB (${pack.manifest.runtime ? `no Node: the guest runs the stub's, its first ${(pack.manifest.runtime.size / MB).toFixed(1)} MB attached as a disk; ` : 'Node, '}its libraries, busybox, agent),`,
      );
      console.log(
        `    rootfs ${(sizeOf('rootfs') / MB).toFixed(1)} MB uncompressed erofs vs ${(compressed / MB).toFixed(1)} MB gzip, manifest + padding ${((payload - sizeOf('kernel') - sizeOf('agent') - sizeOf('rootfs')) / MB).toFixed(2)} MB`,
      );
    };
    sizes(app, '');
    if (baseCli) sizes(baseApp, ', baseline');

    const builds = [
      { tag: '', cliPath: CLI, cliEnv: env, packed: app },
      ...(baseCli ? [{ tag: ', baseline', cliPath: baseCli, cliEnv: baseEnv, packed: baseApp }] : []),
    ];

    // 3. Warm runs (the first of each saves its boot snapshot).
    const series3 = runInterleaved(
      builds.flatMap((b) => [
        {
          label: `smolvm machine run --image IMG -- true (warm)${b.tag}`,
          run: () =>
            timeCommand(
              run(b.cliPath, 'machine', 'run', '--cpus', '1', '--memory', '512', '--image', reference, '--', 'true'),
              b.cliEnv,
            ),
        },
        {
          label: `./my-app run -- true (warm)${b.tag}`,
          run: () => timeCommand([b.packed, 'run', '--', 'true'], b.cliEnv),
        },
      ]),
      runs,
      2,
    );
    report(`3. A warm run of \`true\`, ${runs} interleaved runs (after 2 warm-ups each)`, series3);
    const ratio3 = (i: number) => (median(series3[i + 1].samples) / median(series3[i].samples)).toFixed(2);
    console.log(`  ratio ./my-app/machine run: ${ratio3(0)}x${baseCli ? `; baseline ${ratio3(2)}x` : ''}`);

    // 4. Persistent machines from an empty image store. `--from` twice: with an empty section
    // cache (the first machine made from this pack on this host: every section verified and
    // copied), and as every later one (sections and their verification already in the cache,
    // as a user's second `create --from` of the same pack finds them).
    let m = 0;
    const machine = (args: string[], emptyCaches: () => void, cliPath: string, cliEnv: NodeJS.ProcessEnv) => () => {
      emptyCaches();
      const name = `bench-${m++}`;
      const ms =
        timeCommand(run(cliPath, 'machine', 'create', name, ...args, '--quiet'), cliEnv) +
        timeCommand(run(cliPath, 'machine', 'start', '--name', name, '--quiet'), cliEnv);
      cli(['machine', 'delete', name, '-f'], cliEnv, cliPath);
      return ms;
    };
    const series4 = runInterleaved(
      builds.flatMap((b) => {
        const emptyImageStore = () =>
          spawnSync(process.execPath, [b.cliPath, 'image', 'rm', '-I', reference], {
            env: b.cliEnv,
            stdio: 'ignore',
          });
        const emptySectionCache = () =>
          fs.rmSync(path.join(b.cliEnv.SMOLVM_HOME as string, 'cache', 'pack'), { recursive: true, force: true });
        return [
          {
            label: `machine create --image IMG + start (empty image store)${b.tag}`,
            run: machine(
              ['--image', reference, '--cpus', '1', '--memory', '512'],
              emptyImageStore,
              b.cliPath,
              b.cliEnv,
            ),
          },
          {
            label: `machine create --from my-app.smolmachine + start (first: empty section cache)${b.tag}`,
            run: machine(
              ['--from', `${b.packed}.smolmachine`],
              () => {
                emptyImageStore();
                emptySectionCache();
              },
              b.cliPath,
              b.cliEnv,
            ),
          },
          {
            label: `machine create --from my-app.smolmachine + start (later: sections cached)${b.tag}`,
            run: machine(['--from', `${b.packed}.smolmachine`], emptyImageStore, b.cliPath, b.cliEnv),
          },
        ];
      }),
      runs,
      0,
    );
    report(`4. A persistent machine, image store empty, ${runs} interleaved runs`, series4);
    const ratio = (i: number) => (median(series4[i].samples) / median(series4[i - (i % 3)].samples)).toFixed(2);
    console.log(
      `  ratio --from/--image: first ${ratio(1)}x, later ${ratio(2)}x${baseCli ? `; baseline first ${ratio(4)}x, later ${ratio(5)}x` : ''}`,
    );
    console.log(`  ${os.cpus().length} host cores; load ${os.loadavg()[0].toFixed(2)}`);
  } finally {
    await registry.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
