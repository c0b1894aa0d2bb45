// Early starts: a driver may begin a restore before its caller has loaded (the CLI's loader runs
// this before the CLI bundle), from a recipe an earlier identical restore left (see
// SnapshotCapability.restoreRecipe). Optional: a driver offers one by registering it under its
// name from a small entry module of its own, which must stay cheap to load (no driver index).
// Nothing else may be imported here: the loader evaluates this file on every start.
import type { PrestartedRestore } from './driver';

export interface EarlyStartOptions {
  /**
   * Let the guest run as soon as its state is loaded, instead of waiting paused until the restore
   * is taken over: for a caller that will all but surely take it (a machine's supervisor, spawned
   * under the machine's lock), whose guest then greets its host while the caller still loads.
   */
  run?: boolean;
}

/**
 * Starts the restore `recipe` (a driver's own restoreRecipe JSON, untrusted) describes in
 * `runDir`. Never throws; undefined when it cannot (nothing is left then).
 */
export type EarlyStart = (
  recipe: unknown,
  runDir: string,
  env: NodeJS.ProcessEnv,
  options?: EarlyStartOptions,
) => PrestartedRestore | undefined;

// On globalThis, like the driver registry: the loader's bundle and the CLI's share it.
const KEY = Symbol.for('smolvm.driver-api.early-starts');

function table(): Map<string, EarlyStart> {
  const g = globalThis as Record<symbol, Map<string, EarlyStart> | undefined>;
  return (g[KEY] ??= new Map());
}

/** Called by a driver's early-start entry module; a second registration of a name replaces the first. */
export function registerEarlyStart(driverName: string, start: EarlyStart): void {
  table().set(driverName, start);
}

/** The early start of the driver named `driverName`, if it registered one. */
export function findEarlyStart(driverName: string): EarlyStart | undefined {
  return table().get(driverName);
}
