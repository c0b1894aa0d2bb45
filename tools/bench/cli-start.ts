// Cold start of the CLI: `smolvm --version` and `smolvm --help` against bare `node -e 0` in the
// same run (the floor any Node CLI pays). Run: node tools/run-ts.mjs tools/bench/cli-start.ts [runs]
import fs from 'node:fs';
import path from 'node:path';
import { WORKSPACE, report, runInterleaved, timeCommand } from './lib/stats';

const runs = Number(process.argv[2] ?? 30);
const cli = path.join(WORKSPACE, 'apps/cli/dist/smolvm.js');
if (!fs.existsSync(cli)) {
  console.error(`bench: ${cli} is missing; build first with \`npx nx build cli\``);
  process.exit(1);
}
const node = process.execPath;
const series = runInterleaved(
  [
    { label: 'node -e 0', run: () => timeCommand([node, '-e', '0']) },
    { label: 'smolvm --version', run: () => timeCommand([node, cli, '--version']) },
    { label: 'smolvm --help', run: () => timeCommand([node, cli, '--help']) },
  ],
  runs,
  2,
);
report(`CLI cold start (${runs} interleaved runs, ${path.relative(process.cwd(), cli)})`, series);
