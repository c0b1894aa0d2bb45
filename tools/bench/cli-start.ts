// Start-up of the CLI against bare `node -e 0` in the same run (the floor any Node CLI pays):
// `--version`, `--help` and `machine ls` with the V8 code cache (apps/cli/src/code-cache.ts), the
// same without it (SMOLVM_NO_CODE_CACHE=1), and a `machine ls` that finds no cache and writes it
// at exit (a fresh home each run: what the first run after a build pays).
// The CLI runs as users run it: the executable itself, through its hashbang (which defers
// NODE_EXTRA_CA_CERTS, see libs/common/src/ca-certs.ts); `node smolvm.js` shows the difference.
// The single-file smolvm (apps/cli/dist/smolvm, npx nx build-sea cli), when built, runs the same
// commands: it is node with the CLI bundle as an asset, loaded through the same code cache.
// Run: node tools/run-ts.mjs tools/bench/cli-start.ts [runs] [OTHER_CLI.js]
// OTHER_CLI: another build to compare (e.g. a copy of main's dist/smolvm.js), run the same way.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WORKSPACE, report, runInterleaved, timeCommand } from './lib/stats';

const runs = Number(process.argv[2] ?? 30);
const other = process.argv[3] ? path.resolve(process.argv[3]) : undefined;
const cli = path.join(WORKSPACE, 'apps/cli/dist/smolvm.js');
const sea = path.join(WORKSPACE, 'apps/cli/dist/smolvm');
const hasSea = fs.existsSync(sea);
for (const file of [cli, other]) {
  if (file && !fs.existsSync(file)) {
    console.error(`bench: ${file} is missing; build first with \`npx nx build cli\``);
    process.exit(1);
  }
}
const node = process.execPath;
// A private home: the code cache and the (empty) machine list of this run only.
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-bench-cli-'));
const env = { ...process.env, SMOLVM_HOME: home };
const noCache = { ...env, SMOLVM_NO_CODE_CACHE: '1' };
const { NODE_EXTRA_CA_CERTS: _extraCa, ...withoutExtraCa } = process.env;
let fresh = 0;
const freshHome = () => ({ ...process.env, SMOLVM_HOME: path.join(home, `fresh-${fresh++}`) });
try {
  const series = runInterleaved(
    [
      { label: 'node -e 0', run: () => timeCommand([node, '-e', '0']) },
      { label: 'node -e 0 (without NODE_EXTRA_CA_CERTS)', run: () => timeCommand([node, '-e', '0'], withoutExtraCa) },
      { label: 'smolvm --version', run: () => timeCommand([cli, '--version'], env) },
      { label: 'smolvm --version (no code cache)', run: () => timeCommand([cli, '--version'], noCache) },
      {
        label: 'node smolvm.js --version (node reads NODE_EXTRA_CA_CERTS)',
        run: () => timeCommand([node, cli, '--version'], env),
      },
      { label: 'smolvm --help', run: () => timeCommand([cli, '--help'], env) },
      { label: 'smolvm machine ls', run: () => timeCommand([cli, 'machine', 'ls'], env) },
      { label: 'smolvm machine ls (no code cache)', run: () => timeCommand([cli, 'machine', 'ls'], noCache) },
      {
        label: 'smolvm machine ls (no cache yet: writes it)',
        run: () => timeCommand([cli, 'machine', 'ls'], freshHome()),
      },
      ...(hasSea
        ? [
            { label: 'single-file smolvm --version', run: () => timeCommand([sea, '--version'], env) },
            {
              label: 'single-file smolvm --version (no code cache)',
              run: () => timeCommand([sea, '--version'], noCache),
            },
            // No hashbang to defer it: the single file pays for NODE_EXTRA_CA_CERTS when it is set.
            {
              label: 'single-file smolvm --version (without NODE_EXTRA_CA_CERTS)',
              run: () => timeCommand([sea, '--version'], { ...withoutExtraCa, SMOLVM_HOME: home }),
            },
            { label: 'single-file smolvm machine ls', run: () => timeCommand([sea, 'machine', 'ls'], env) },
            {
              label: 'single-file smolvm machine ls (no code cache)',
              run: () => timeCommand([sea, 'machine', 'ls'], noCache),
            },
          ]
        : []),
      ...(other
        ? [
            { label: 'other CLI --version', run: () => timeCommand([node, other, '--version'], env) },
            { label: 'other CLI machine ls', run: () => timeCommand([node, other, 'machine', 'ls'], env) },
          ]
        : []),
    ],
    runs,
    2,
  );
  report(
    `CLI start-up (${runs} interleaved runs, ${path.relative(process.cwd(), cli)}${hasSea ? ' and the single-file smolvm' : ''}${other ? `, other: ${other}` : ''})`,
    series,
  );
  if (!hasSea) console.log(`  (no ${sea}: build it with \`npx nx build-sea cli\` to compare the single-file form)`);
  const cacheDir = path.join(home, 'cache', 'code-cache');
  for (const name of fs.readdirSync(cacheDir))
    console.log(`  code cache: ${name} ${(fs.statSync(path.join(cacheDir, name)).size / 1024).toFixed(0)} KiB`);
} finally {
  fs.rmSync(home, { recursive: true, force: true });
}
