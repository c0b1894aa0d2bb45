// Early restores. A CLI that is about to restore a boot snapshot can start QEMU for it while it is
// still loading its own code, from a recipe an earlier identical restore left: the exact process
// it spawned then, with its run directory as the only thing that changes. The restore commands
// are on QEMU's stdin from the start, so the device state loads without waiting on the CLI.
// restoreQemuVm adopts such a process only if it is exactly the one it would start itself;
// anything else is ended (PrestartMismatchError) and the restore starts over.
// Small on purpose: the CLI's loader runs this before any of the CLI is loaded.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { OutputTail, findExecutable, pdeathsigCommand } from '@smolvm/driver-kit';

/** How a restored QEMU was started (see recipeOf in snapshot.ts). Plain JSON. */
export interface QemuRestoreRecipe {
  /** What was spawned: setpriv, which sets the parent-death signal and execs QEMU. */
  file: string;
  args: string[];
  /** The run directory the arguments name; a prestart puts its own in its place. */
  runDir: string;
  /** Where, under runDir, the driver keeps its files; its QMP socket; the console log. */
  driverDir: string;
  qmpSocket: string;
  consoleLog: string;
  /** The device state to load (the snapshot's `state` file). */
  stateFile: string;
  /** The guest RAM file and its size: a short one is never handed to QEMU (which would grow it). */
  memoryFile: string;
  memoryBytes: number;
}

/** A QEMU started from a recipe, loading its snapshot. */
export interface PrestartedQemu {
  readonly kind: 'qemu-restore';
  readonly file: string;
  readonly args: readonly string[];
  readonly stateFile: string;
  /** Undefined when it could not even be spawned (`failed` then says why). */
  readonly child: ChildProcess | undefined;
  readonly stderr: OutputTail;
  readonly qmpSocket: string;
  /** QEMU's connection to the QMP socket (it connects as it starts). */
  readonly qmpConnection: Promise<net.Socket>;
  /** Resolves with why, if the prestart failed before anyone took it over. */
  readonly failed: Promise<string>;
  /** Taken over: QEMU, its pipes and sockets keep the event loop alive from now on. */
  hold(): void;
  /** Ends QEMU and closes what the prestart opened (not the run directory: its caller's). */
  discard(): void;
}

/** The fd the device state reaches QEMU on: the caller opens the state file, QEMU inherits it. */
export const STATE_FD = 3;

/**
 * The restore commands, for QEMU's second monitor on its stdin (`-chardev stdio`, see argv.ts):
 * written the moment QEMU is spawned, so it loads the device state as soon as it is up, without
 * a round trip to whoever started it. Both sides of a snapshot need x-ignore-shared: with it,
 * RAM that was shared at save time is neither in the stream nor expected from it. The state comes
 * from an inherited fd, not an `exec:` command: QEMU's sandbox forbids it to start any process.
 * `run`: a `cont` follows, which during an incoming migration only marks the VM to run once its
 * state is loaded (instead of waiting paused, -S, for whoever takes it over).
 */
export function restoreScript(options: { run?: boolean } = {}): string {
  return [
    { execute: 'qmp_capabilities' },
    {
      execute: 'migrate-set-capabilities',
      arguments: { capabilities: [{ capability: 'x-ignore-shared', state: true }] },
    },
    { execute: 'migrate-incoming', arguments: { uri: `fd:${STATE_FD}` } },
    ...(options.run ? [{ execute: 'cont' }] : []),
  ]
    .map((c) => JSON.stringify(c) + '\n')
    .join('');
}

/** The QEMU builds a recipe may exec, as smolvm itself resolves them (PATH): see findExecutable. */
const QEMU_BINARIES = ['qemu-system-x86_64', 'qemu-system-aarch64'];

/**
 * The options buildQemuArgv uses, and whether each takes a value. Anything else is refused: a
 * recipe must not reach the QEMU options that run programs (-netdev tap's script=, -incoming
 * exec:, -run-with, ...). The recipe file itself is trusted only if this user wrote it (the
 * CLI's loader checks that); this is the second wall.
 */
const QEMU_OPTIONS = new Map<string, boolean>([
  ...[
    '-M',
    '-accel',
    '-cpu',
    '-smp',
    '-m',
    '-kernel',
    '-initrd',
    '-append',
    '-object',
    '-global',
    '-incoming',
    '-chardev',
    '-mon',
    '-serial',
    '-device',
    '-blockdev',
    '-fsdev',
    '-netdev',
    '-sandbox',
  ].map((o) => [o, true] as const),
  ...['-nodefaults', '-no-user-config', '-nographic', '-no-reboot', '-S'].map((o) => [o, false] as const),
]);
/** Values of these options must start with one of these (what buildQemuArgv writes). */
const VALUE_PREFIXES: Record<string, string[]> = {
  '-incoming': ['defer'],
  '-netdev': ['stream,'],
  '-object': ['memory-backend-file,'],
  '-chardev': ['socket,', 'file,', 'stdio,'],
  '-fsdev': ['local,'],
  // Only ever turned on: the seccomp filter restricts QEMU, it cannot grant anything.
  '-sandbox': ['on'],
};

/** A `..` path segment anywhere in an argument (`path=/a/../b`, `file.filename=..`). */
const DOTDOT = /(^|[/=,:])\.\.($|[/,:])/;

function isCleanAbsolute(p: unknown): p is string {
  return typeof p === 'string' && path.isAbsolute(p) && path.normalize(p) === p && !p.split(path.sep).includes('..');
}

/** Whether `p` is strictly inside `dir`, both clean absolute paths. */
function isInside(p: string, dir: string): boolean {
  const rel = path.relative(dir, p);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

/** The QEMU arguments of a recipe: only buildQemuArgv's options, no `..`, nothing that runs a program. */
function qemuArgsAllowed(args: string[]): boolean {
  for (let i = 0; i < args.length; i++) {
    const takesValue = QEMU_OPTIONS.get(args[i]);
    if (takesValue === undefined) return false;
    if (!takesValue) continue;
    const value = args[++i];
    if (value === undefined || DOTDOT.test(value)) return false;
    const prefixes = VALUE_PREFIXES[args[i - 1]];
    if (prefixes && !prefixes.some((p) => value === p || value.startsWith(p))) return false;
  }
  return true;
}

/** pdeathsigCommand for `qemu` with no QEMU arguments, if the setpriv it names is the one `env`'s PATH resolves. */
function setprivCommand(qemu: string, env: NodeJS.ProcessEnv): { file: string; args: string[] } | undefined {
  try {
    const command = pdeathsigCommand(qemu, []);
    return command.file === findExecutable('setpriv', env) ? command : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A recipe from disk, checked: only our own kind of process is ever started from one. The program
 * is the setpriv smolvm resolves, with exactly the options pdeathsigCommand gives it, told only to
 * exec the QEMU smolvm resolves (with `env`'s PATH, as the restore itself would); the QEMU
 * arguments use only buildQemuArgv's options; every path is absolute and normalised (no `..`)
 * and the per-run ones are inside the run directory.
 */
export function parseQemuRestoreRecipe(
  value: unknown,
  env: NodeJS.ProcessEnv = process.env,
): QemuRestoreRecipe | undefined {
  const r = value as Partial<QemuRestoreRecipe> | null;
  if (!r || typeof r !== 'object') return undefined;
  const paths = [r.file, r.runDir, r.driverDir, r.qmpSocket, r.consoleLog, r.stateFile, r.memoryFile];
  if (typeof r.memoryBytes !== 'number' || !Number.isSafeInteger(r.memoryBytes) || r.memoryBytes <= 0) return undefined;
  if (!paths.every(isCleanAbsolute)) return undefined;
  if (!Array.isArray(r.args) || !r.args.every((a) => typeof a === 'string')) return undefined;
  const runDir = r.runDir as string;
  if (![r.driverDir, r.qmpSocket, r.consoleLog].every((p) => isInside(p as string, runDir))) return undefined;
  const args = r.args;
  // Exactly the setpriv command smolvm would build (its options, then `--` and QEMU), nothing else before QEMU's
  // arguments.
  const head = QEMU_BINARIES.map((name) => findExecutable(name, env))
    .filter((qemu): qemu is string => qemu !== undefined)
    .map((qemu) => setprivCommand(qemu, env))
    .find((c) => c !== undefined && c.file === r.file && c.args.every((a, i) => args[i] === a));
  if (!head || !qemuArgsAllowed(args.slice(head.args.length))) return undefined;
  return r as QemuRestoreRecipe;
}

/** The recipe with `runDir` as its run directory; undefined unless every per-run path is in it. */
export function recipeIn(recipe: QemuRestoreRecipe, runDir: string): QemuRestoreRecipe | undefined {
  const dir = path.resolve(runDir);
  if (dir.split(path.sep).filter(Boolean).length < 2) return undefined;
  const inside = [recipe.driverDir, recipe.qmpSocket, recipe.consoleLog].every(
    (p) => isCleanAbsolute(p) && isInside(p, dir),
  );
  return inside ? { ...recipe, runDir: dir } : undefined;
}

/** Replaces the recipe's run directory with `runDir` wherever an argument names it. */
export function recipeCommand(recipe: QemuRestoreRecipe, runDir: string): { file: string; args: string[] } {
  return { file: recipe.file, args: recipe.args.map((a) => a.split(recipe.runDir).join(runDir)) };
}

/**
 * Starts the recipe's QEMU in `runDir` (which the caller made, private, with whatever else
 * listens there). Never throws: a failure shows in `failed`. Needs no event loop turn: the
 * restore runs while the caller's thread is busy loading. `run`: the guest runs as soon as its
 * state is loaded rather than waiting paused for the taker (EarlyStartOptions.run).
 */
export function prestartQemuRestore(
  recipe: QemuRestoreRecipe,
  runDir: string,
  env: NodeJS.ProcessEnv = process.env,
  options: { run?: boolean } = {},
): PrestartedQemu {
  const moved = (p: string) => path.join(runDir, path.relative(recipe.runDir, p));
  const qmpSocket = moved(recipe.qmpSocket);
  const { file, args } = recipeCommand(recipe, runDir);
  const stderr = new OutputTail();
  const server = net.createServer();
  let child: ChildProcess | undefined;
  let report!: (why: string) => void;
  const failed = new Promise<string>((resolve) => (report = resolve));
  // Until hold(), nothing here keeps the event loop alive: a caller that fails before it takes
  // this over exits as it would have, and its exit ends QEMU (discard, or the parent-death signal).
  let held = false;
  const qmpConnection = new Promise<net.Socket>((resolve) =>
    server.once('connection', (socket) => {
      // Only QEMU's: the socket goes once it connected (an unlinked socket cannot go stale).
      server.close();
      fs.rmSync(qmpSocket, { force: true });
      if (!held) socket.unref();
      resolve(socket);
    }),
  );
  server.unref();
  server.on('error', (err) => report(`QMP socket: ${err.message}`));
  try {
    // The checks restoreQemuVm makes before it starts QEMU (a snapshot replaced or cut short since).
    if (fs.statSync(recipe.memoryFile, { throwIfNoEntry: false })?.size !== recipe.memoryBytes)
      throw new Error(`${recipe.memoryFile} is not the snapshot's RAM file any more`);
    if (!fs.existsSync(recipe.stateFile)) throw new Error(`${recipe.stateFile} is gone`);
    fs.mkdirSync(moved(recipe.driverDir), { recursive: true });
    fs.writeFileSync(moved(recipe.consoleLog), '');
    server.listen(qmpSocket);
    const state = fs.openSync(recipe.stateFile, 'r');
    try {
      child = spawn(file, args, { stdio: ['pipe', 'ignore', 'pipe', state], env, detached: true });
    } finally {
      fs.closeSync(state);
    }
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(restoreScript(options));
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => stderr.push(chunk));
    child.unref();
    (child.stderr as net.Socket | null)?.unref();
    child.once('error', (err) => report(`cannot run ${file}: ${err.message}`));
    child.once('exit', (code, signal) =>
      report(signal ? `QEMU was killed by ${signal}` : `QEMU exited with status ${code}`),
    );
  } catch (err) {
    report((err as Error).message);
  }
  return {
    kind: 'qemu-restore',
    file,
    args,
    stateFile: recipe.stateFile,
    child,
    stderr,
    qmpSocket,
    qmpConnection,
    failed,
    hold() {
      held = true;
      child?.ref();
      (child?.stderr as net.Socket | null)?.ref();
      server.ref();
      void qmpConnection.then((socket) => socket.ref());
    },
    discard() {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      void qmpConnection.then((s) => s.destroy());
      server.close();
      fs.rmSync(qmpSocket, { force: true });
    },
  };
}
