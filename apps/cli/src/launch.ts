// What both forms of the `smolvm` executable do first: dist/smolvm.js (src/bin.ts, run by node)
// and the single-file smolvm (src/sea.ts). Early start for `machine run`, then the CLI bundle
// through the V8 code cache (code-cache.ts), then the CLI.
// Only Node built-ins and tiny modules here: this code is compiled on every start, uncached.
import path from 'node:path';
import { smolvmDirs } from '@smolvm/common';
import { commandOf, loadBundle } from './code-cache';

interface CliBundle {
  runCli(): void;
}

export interface LaunchOptions {
  /** The CLI bundle's path; with `source`, the executable that carries it. Keys the code cache and early-start recipes. */
  bundle: string;
  /** The bundle's text when it is an asset of the executable, not a file. */
  source?: () => string;
  /** Starts an early restore for `machine run` (prestart.ts), given the arguments and the cache dir. */
  prestart(args: string[], cacheDir: string): void;
}

function smolvmCacheDir(): string | undefined {
  try {
    return smolvmDirs().cache;
  } catch {
    return undefined;
  }
}

export function launch(options: LaunchOptions): void {
  const args = process.argv.slice(2);
  const end = args.indexOf('--');
  const debug = (end < 0 ? args : args.slice(0, end)).includes('--debug');
  const command = commandOf(args);
  const cache = smolvmCacheDir();
  // Before the CLI loads: QEMU restores the snapshot meanwhile.
  if (command === 'machine run' && cache) options.prestart(args, cache);
  const loaded = loadBundle({
    bundle: options.bundle,
    ...(options.source ? { source: options.source } : {}),
    cacheDir: process.env.SMOLVM_NO_CODE_CACHE === '1' || !cache ? undefined : path.join(cache, 'code-cache'),
    command,
    ...(debug ? { onNote: (message: string) => process.stderr.write(`smolvm: note: code cache: ${message}\n`) } : {}),
  });
  process.once('exit', (code) => loaded.flush(code));
  (loaded.exports as CliBundle).runCli();
}
