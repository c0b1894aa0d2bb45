#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS SMOLVM_NODE_EXTRA_CA_CERTS=${NODE_EXTRA_CA_CERTS} node
// The `smolvm` executable (dist/smolvm.js): loads the CLI bundle (dist/smolvm-main.js) through a
// V8 code cache in <cache>/code-cache (see code-cache.ts), then runs it. It stays this file, so
// process.argv[1] (how the supervisor re-runs the CLI) names the same executable as before.
// Only Node built-ins and tiny modules here: this file is compiled on every start, uncached.
// The hashbang starts node without NODE_EXTRA_CA_CERTS (parsing it is ~90 ms per start with a
// system bundle in it) and restoreCaCertsEnv puts it back: see libs/common/src/ca-certs.ts.
import Module from 'node:module';
import path from 'node:path';
import { restoreCaCertsEnv, smolvmDirs } from '@smolvm/common';
import { commandOf, loadBundle } from './code-cache';
import type * as FastExec from './exec-fast';
import type * as Prestart from './prestart';

interface CliBundle {
  runCli(): void;
}

restoreCaCertsEnv();

function smolvmCacheDir(): string | undefined {
  try {
    return smolvmDirs().cache;
  } catch {
    return undefined;
  }
}

function cacheDir(): string | undefined {
  if (process.env.SMOLVM_NO_CODE_CACHE === '1') return undefined;
  const cache = smolvmCacheDir();
  return cache && path.join(cache, 'code-cache');
}

const args = process.argv.slice(2);
const end = args.indexOf('--');
const debug = (end < 0 ? args : args.slice(0, end)).includes('--debug');
const command = commandOf(args);
const bundle = path.join(__dirname, 'smolvm-main.js');
// Before the CLI loads: QEMU restores the snapshot meanwhile (see prestart.ts, a file of its own
// so that other commands load none of it).
if (command === 'machine run') {
  const cache = smolvmCacheDir();
  if (cache) (Module.createRequire(__filename)(path.join(__dirname, 'smolvm-prestart.js')) as typeof Prestart).prestartFor(args, cache, bundle);
}
const onNote = debug ? { onNote: (message: string) => process.stderr.write(`smolvm: note: code cache: ${message}\n`) } : {};
/** Loads `file` (next to this one) through its code cache, flushed as the process exits. */
function load(file: string): unknown {
  const loaded = loadBundle({ bundle: file, cacheDir: cacheDir(), command, ...onNote });
  process.once('exit', (code) => loaded.flush(code));
  return loaded.exports;
}
// `machine exec` in its plain forms runs from a bundle of its own (see exec-fast.ts); the rest,
// and any exec it declines, from the CLI.
const fastExec = command === 'machine exec' && (load(path.join(__dirname, 'smolvm-exec.js')) as typeof FastExec).runFastExec(args);
if (!fastExec) (load(bundle) as CliBundle).runCli();
