// Early restores for `machine run` (libs/runtime/src/prestart.ts): the executable starts the VM
// an identical earlier invocation restored, from that run's recipe, before it loads the CLI, so
// QEMU loads the snapshot while node loads smolvm. startVm then takes it over only if it is
// exactly the restore this run needs; otherwise it is ended, and nothing changed but some CPU.
// A machine's supervisor (`machine _supervise --name N`, spawned under the machine's lock by
// `machine start`) does the same with its machine's restore, its own disks in the slots. A
// machine's first start has no recipe of its own yet: it takes the shape recipe another machine
// of the same shape left (shapeRecipe), with that machine's directory and name swapped for its own.
//
// A recipe is found by the invocation: the words and flags before `--` (the command after it
// changes nothing about the VM), the working directory (Smolfile), the CLI bundle, and the
// environment variables that can change what starts. One small owner-only JSON file per
// invocation under <cache>/prestart, at most MAX_RECIPES of them.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { assertTrustedPath, ensurePrivateDir, smolvmDirs, writeFileAtomic } from '@smolvm/common';
// The libraries' early-start entry points, not their indexes: this runs in the executable's
// small loader, which must not evaluate (or require the built-ins of) whole libraries.
import { findEarlyStart } from '@smolvm/driver-api/early-start';
import { isValidMachineName } from '@smolvm/machine-store';
import { startEarlySupervisor } from '@smolvm/machines/early-start';
import { parseRunRecipe, prestartRun, type PrestartedRun, type RunRecipe } from '@smolvm/runtime/prestart';
import '@smolvm/drivers/early-start';
import { parsePlainStart } from './plain-start';
import { selfCommand } from './self';

const MAX_RECIPES = 32;
/** Environment that cannot change which VM a run starts. */
const IRRELEVANT_ENV = new Set([
  'SMOLVM_TIMINGS',
  'SMOLVM_NO_TCG_WARNING',
  'SMOLVM_NO_CODE_CACHE',
  'SMOLVM_NO_EARLY_START',
  'SMOLVM_NODE_EXTRA_CA_CERTS',
]);
const RELEVANT_ENV = [
  'PATH',
  'HOME',
  'TMPDIR',
  'XDG_RUNTIME_DIR',
  'XDG_CACHE_HOME',
  'XDG_DATA_HOME',
  'XDG_CONFIG_HOME',
];

/** What the loader hands the CLI (a global: the two are separate bundles). */
interface Handoff {
  run?: PrestartedRun;
  /** The recipe file's text as the loader read it. */
  text?: string;
}
const HANDOFF = Symbol.for('smolvm.prestart');

export function invocationKey(args: string[], cwd: string, env: NodeJS.ProcessEnv, bundle: string): string {
  const end = args.indexOf('--');
  const vars = Object.keys(env)
    .filter((k) => (k.startsWith('SMOLVM_') && !IRRELEVANT_ENV.has(k)) || RELEVANT_ENV.includes(k))
    .sort()
    .map((k) => [k, env[k]]);
  let bundleId = '';
  try {
    const st = fs.statSync(bundle);
    bundleId = `${st.size}:${st.mtimeMs}`;
  } catch {
    // No bundle: the key still names the invocation.
  }
  const words = end < 0 ? args : args.slice(0, end);
  return crypto
    .createHash('sha256')
    .update(JSON.stringify([bundle, bundleId, words, cwd, vars]))
    .digest('hex')
    .slice(0, 32);
}

export function recipeFile(cacheDir: string, key: string): string {
  return path.join(cacheDir, 'prestart', `${key}.json`);
}

/**
 * The recipe's text, if only this user can have written it: the file and every directory from
 * the cache dir down are this user's, no symlinks, not writable by others (assertTrustedPath).
 * A recipe names what to run, so one another user could plant or swap would run their program.
 */
function readOwn(file: string, cacheDir: string): string | undefined {
  try {
    assertTrustedPath(file, cacheDir);
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Loader side: starts the restore the recipe for this invocation describes, if there is one.
 * Never throws; whatever it starts is ended when the process exits unless the CLI took it over.
 */
export function prestartFor(
  args: string[],
  cacheDir: string,
  bundle: string,
  env: NodeJS.ProcessEnv = process.env,
): void {
  // A plain `machine start` spawns the machine's supervisor now (whose own loader restores).
  if (args[0] === 'machine' && args[1] === 'start') {
    const name = plainStartName(args);
    if (name !== undefined) startEarlySupervisor(name, [...selfCommand(), 'machine', '_supervise'], env);
    return;
  }
  const handoff: Handoff = {};
  (globalThis as Record<symbol, unknown>)[HANDOFF] = handoff;
  if (env.SMOLVM_NO_EARLY_START === '1') return;
  try {
    const text =
      readOwn(recipeFile(cacheDir, invocationKey(args, process.cwd(), env, bundle)), cacheDir) ??
      fromShapeRecipe(args, cacheDir, bundle, env);
    if (text === undefined) return;
    handoff.text = text;
    const recipe = parseRunRecipe(JSON.parse(text));
    // The recipe's driver, if it registered an early start (early-starts.ts).
    const start = recipe && findEarlyStart(recipe.driver);
    if (!recipe || !start) return;
    // A supervisor runs under its machine's lock and takes its restore over unless the machine
    // changed: its guest may run (and greet) while the supervisor loads. A run's waits, paused.
    handoff.run = prestartRun(recipe, start, env, { run: args[0] === 'machine' && args[1] === '_supervise' });
    const run = handoff.run;
    if (run) process.once('exit', () => run.discard());
  } catch {
    // No early start: the run restores as usual.
  }
}

/** CLI side: the early start the loader began for this process, once. */
export function takePrestarted(): PrestartedRun | undefined {
  const handoff = (globalThis as Record<symbol, Handoff | undefined>)[HANDOFF];
  const run = handoff?.run;
  if (handoff) handoff.run = undefined;
  return run;
}

/** CLI side: keeps the recipe of this run's restore for the next identical invocation. */
export function keepRecipe(
  args: string[],
  cacheDir: string,
  bundle: string,
  recipe: RunRecipe,
  env: NodeJS.ProcessEnv = process.env,
): void {
  const text = JSON.stringify(recipe) + '\n';
  const handoff = (globalThis as Record<symbol, Handoff | undefined>)[HANDOFF];
  if (handoff?.text !== undefined && sameButRunDir(handoff.text, text)) return;
  try {
    const file = recipeFile(cacheDir, invocationKey(args, process.cwd(), env, bundle));
    ensurePrivateDir(path.dirname(file));
    // Not into a directory another user could swap the recipe in: the next start would not read it.
    assertTrustedPath(path.dirname(file), cacheDir, 'dir');
    writeFileAtomic(file, text);
    keepShapeRecipe(args, cacheDir, bundle, text, env);
    evictOldRecipes(path.dirname(file));
  } catch {
    // Only a missed head start next time.
  }
}

const NAME_SLOT = '@@smolvm-machine-name@@';
const DIR_SLOT = '@@smolvm-machine-dir@@';

/**
 * The machine a supervisor invocation (`machine _supervise --name N ...`) runs, its directory, and
 * its shape: its record without what names this one machine (name, id, creation time, runtime),
 * so machines created alike share it and a machine made otherwise (other resources, another pack,
 * a copy of a snapshot) does not. None for a copy of a snapshot, whose first start resumes the
 * snapshot's VM instead of restoring a boot snapshot, or a record only this user could not write.
 */
function supervised(args: string[], env: NodeJS.ProcessEnv): { name: string; dir: string; shape: string } | undefined {
  if (args[0] !== 'machine' || args[1] !== '_supervise') return undefined;
  const at = args.indexOf('--name');
  const name = at > 1 ? args[at + 1] : undefined;
  if (!isValidMachineName(name)) return undefined;
  const root = path.join(smolvmDirs(env).data, 'machines');
  const dir = path.join(root, name);
  try {
    const file = path.join(dir, 'machine.json');
    assertTrustedPath(file, root);
    const record = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    if (record.name !== name || record.fromSnapshot !== undefined) return undefined;
    const { name: _name, id: _id, createdAt: _createdAt, runtime: _runtime, ...shape } = record;
    return { name, dir, shape: JSON.stringify(shape) };
  } catch {
    return undefined;
  }
}

/** Where the shape recipe of a machine's supervisor lives: keyed by its invocation but for the name, and its shape. */
function shapeRecipeFile(
  args: string[],
  shape: string,
  cacheDir: string,
  bundle: string,
  env: NodeJS.ProcessEnv,
): string {
  const at = args.indexOf('--name');
  const shaped = [...args.slice(0, at + 1), NAME_SLOT, ...args.slice(at + 2)];
  const key = crypto
    .createHash('sha256')
    .update(`${invocationKey(shaped, '/', env, bundle)}\0${shape}`)
    .digest('hex');
  return recipeFile(cacheDir, `shape-${key.slice(0, 32)}`);
}

/**
 * A supervisor's recipe as a shape recipe: its machine's directory and name as slots. Only for a
 * machine with nothing of its own beyond its disks and inbox (no volumes, no network, no SSH
 * agent): another machine's first start must never reach the host paths or ports a user gave
 * this one. Undefined when the recipe does not qualify or still names the machine's directory.
 */
export function shapeRecipeOf(text: string, name: string, dir: string): string | undefined {
  const recipe = JSON.parse(text) as {
    restore?: { args?: unknown };
    setup?: { hostname?: unknown; volumes?: unknown; network?: unknown; sshAgent?: unknown };
  };
  const args = recipe.restore?.args;
  if (!Array.isArray(args) || args.includes('-netdev') || args.filter((a) => a === '-fsdev').length !== 1) return;
  const setup = recipe.setup;
  if (setup && (setup.network !== undefined || setup.sshAgent !== undefined)) return;
  if (setup && Array.isArray(setup.volumes) && setup.volumes.length > 1) return;
  const inDir = JSON.stringify(dir).slice(1, -1);
  const shaped = text
    .split(`${inDir}/`)
    .join(`${DIR_SLOT}/`)
    .split(`"hostname":${JSON.stringify(name)}`)
    .join(`"hostname":"${NAME_SLOT}"`);
  // Every path of the machine's own is in the slot now: nothing left that names its directory.
  return shaped.includes(inDir) ? undefined : shaped;
}

function keepShapeRecipe(args: string[], cacheDir: string, bundle: string, text: string, env: NodeJS.ProcessEnv) {
  const machine = supervised(args, env);
  if (!machine) return;
  const shaped = shapeRecipeOf(text, machine.name, machine.dir);
  if (shaped === undefined) return;
  const file = shapeRecipeFile(args, machine.shape, cacheDir, bundle, env);
  if (readOwn(file, cacheDir) !== shaped) writeFileAtomic(file, shaped);
}

/** A supervisor's recipe made from the shape recipe of its invocation, if there is one. */
export function fromShapeRecipe(
  args: string[],
  cacheDir: string,
  bundle: string,
  env: NodeJS.ProcessEnv,
): string | undefined {
  const machine = supervised(args, env);
  if (!machine) return undefined;
  const shaped = readOwn(shapeRecipeFile(args, machine.shape, cacheDir, bundle, env), cacheDir);
  if (shaped === undefined) return undefined;
  // QEMU opens the inbox share as it starts, and a machine that never ran has none yet: made as
  // the supervisor would (resetInbox), under the same lock. Anything else there: no early start.
  const inbox = path.join(machine.dir, 'inbox');
  try {
    fs.mkdirSync(inbox, { mode: 0o700 });
  } catch {
    const st = fs.lstatSync(inbox, { throwIfNoEntry: false });
    if (!st?.isDirectory() || st.uid !== process.getuid?.() || (st.mode & 0o777) !== 0o700) return undefined;
  }
  return shaped
    ?.split(`${DIR_SLOT}/`)
    .join(`${JSON.stringify(machine.dir).slice(1, -1)}/`)
    .split(NAME_SLOT)
    .join(machine.name);
}

/** Recipes of two runs differ in their run directories (a fresh one per run), if nothing else. */
export function sameButRunDir(a: string, b: string): boolean {
  const runDir = (text: string) => {
    try {
      const dir = (JSON.parse(text) as { restore?: { runDir?: unknown } }).restore?.runDir;
      return typeof dir === 'string' && dir.length > 1 ? dir : undefined;
    } catch {
      return undefined;
    }
  };
  const da = runDir(a);
  const db = runDir(b);
  if (da === undefined || db === undefined) return a === b;
  return a.split(da).join('\0') === b.split(db).join('\0');
}

function evictOldRecipes(dir: string): void {
  const files = fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.json'))
    .map((n) => ({
      file: path.join(dir, n),
      mtime: fs.statSync(path.join(dir, n), { throwIfNoEntry: false })?.mtimeMs ?? 0,
    }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const { file } of files.slice(MAX_RECIPES)) fs.rmSync(file, { force: true });
}

/** The machine a plain `machine start` starts (plain-start.ts); undefined for any other form. */
export function plainStartName(args: string[]): string | undefined {
  return parsePlainStart(args)?.name;
}
