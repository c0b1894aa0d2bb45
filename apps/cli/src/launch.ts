// What both forms of the `smolvm` executable do first: dist/smolvm.js (src/bin.ts, run by node)
// and the single-file smolvm (src/sea.ts). Early start for `machine run`, then the CLI bundle
// through the V8 code cache (code-cache.ts), then the CLI; a plain `machine exec`, a plain
// `machine start` and a machine's supervisor run from small bundles of their own instead
// (exec-fast.ts, start-fast.ts, supervise-fast.ts) where the executable has them.
// Only Node built-ins and tiny modules here: this code is compiled on every start, uncached.
import path from 'node:path';
import { smolvmDirs } from '@smolvm/common';
import { commandOf, loadBundle } from './code-cache';
import type * as FastExec from './exec-fast';
import type * as FastStart from './start-fast';
import type * as FastSupervise from './supervise-fast';

const PRESTART_COMMANDS = ['machine run', 'machine _supervise', 'machine start'];

interface CliBundle {
  runCli(): void;
}

export interface LaunchOptions {
  /**
   * The CLI bundle's path; with `source`, the executable that carries it. Keys the code cache and
   * early-start recipes.
   */
  bundle: string;
  /** The bundle's text when it is an asset of the executable, not a file. */
  source?: () => string;
  /**
   * Starts an early restore for `machine run` or a supervisor (prestart.ts), given the arguments,
   * the cache dir and a loader that goes through the code cache; none for the packed executable.
   */
  prestart?(args: string[], cacheDir: string, load: (bundle: string) => unknown): void;
  /** The commands (commandOf) `prestart` runs for: default `machine run`, `machine start` and the supervisor's. */
  prestartCommands?: string[];
  /** The fast `machine exec` bundle (dist/smolvm-exec.js), loaded instead of the CLI for plain execs. */
  fastExec?: string;
  /** The fast `machine start` bundle (dist/smolvm-start.js), loaded instead of the CLI for plain starts. */
  fastStart?: string;
  /** The supervisor's bundle (dist/smolvm-supervise.js), loaded instead of the CLI by `machine _supervise`. */
  supervise?: string;
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
  /** Loads a bundle through its code cache, flushed as the process exits. */
  const load = (bundle: string, source?: () => string): unknown => {
    const loaded = loadBundle({
      bundle,
      ...(source ? { source } : {}),
      cacheDir: process.env.SMOLVM_NO_CODE_CACHE === '1' || !cache ? undefined : path.join(cache, 'code-cache'),
      command,
      ...(debug ? { onNote: (message: string) => process.stderr.write(`smolvm: note: code cache: ${message}\n`) } : {}),
    });
    process.once('exit', (code) => loaded.flush(code));
    return loaded.exports;
  };
  // Before the CLI loads: QEMU restores the snapshot meanwhile (a run's, or a machine's in its
  // supervisor, which a plain `machine start` spawns from here).
  if ((options.prestartCommands ?? PRESTART_COMMANDS).includes(command) && cache) options.prestart?.(args, cache, load);
  // Any exec or start a fast path declines (help, unusual flags) goes to the CLI, as every other command.
  const fast =
    (command === 'machine exec' &&
      options.fastExec !== undefined &&
      (load(options.fastExec) as typeof FastExec).runFastExec(args)) ||
    (command === 'machine start' &&
      options.fastStart !== undefined &&
      (load(options.fastStart) as typeof FastStart).runFastStart(args)) ||
    (command === 'machine _supervise' &&
      options.supervise !== undefined &&
      (load(options.supervise) as typeof FastSupervise).runFastSupervise(args, options.bundle));
  if (!fast) (load(options.bundle, options.source) as CliBundle).runCli();
}
