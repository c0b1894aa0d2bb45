#!/usr/bin/env node
// Runs a TypeScript tool script (benchmarks, fixtures) against the workspace's library sources:
//   node tools/run-ts.mjs tools/bench/pull.ts [args...]
// It bundles the script with esbuild (already a dependency of tsup), resolving @smolvm/* aliases
// from tsconfig.base.json, into a temp file, and runs it with the same node and arguments.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const [script, ...args] = process.argv.slice(2);
if (!script) {
  console.error('usage: node tools/run-ts.mjs SCRIPT.ts [args...]');
  process.exit(2);
}
const root = path.resolve(import.meta.dirname, '..');
const require = createRequire(path.join(root, 'package.json'));
const esbuild = require('esbuild');

const entry = path.resolve(script);
const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-run-ts-'));
const outfile = path.join(outDir, `${path.basename(entry, '.ts')}-${crypto.randomBytes(3).toString('hex')}.cjs`);
try {
  esbuild.buildSync({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: 'inline',
    tsconfig: path.join(root, 'tsconfig.base.json'),
    // Native and large runtime deps stay in node_modules: resolve them from the workspace root.
    external: ['koffi', 'ssh2', 'cpu-features'],
    nodePaths: [path.join(root, 'node_modules')],
    logLevel: 'error',
  });
  const result = spawnSync(process.execPath, ['--enable-source-maps', outfile, ...args], {
    stdio: 'inherit',
    // Bundled scripts run from a temp dir: SMOLVM_WORKSPACE tells them where the checkout is.
    env: { ...process.env, NODE_PATH: path.join(root, 'node_modules'), SMOLVM_WORKSPACE: root },
  });
  process.exitCode = result.status ?? 1;
} finally {
  fs.rmSync(outDir, { recursive: true, force: true });
}
