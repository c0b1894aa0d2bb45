// Early supervisors for `machine start`. The CLI spends ~50 ms loading itself before
// Machines.start spawns the supervisor, and the supervisor's early restore (the guest's start)
// only begins after that. The CLI's loader can instead take the machine's lock and spawn the
// supervisor first, with the invocation the machine's last start used (start.json); the CLI then
// loads meanwhile, and Machines.start adopts that supervisor only if it is exactly the one it
// would spawn itself; any other is ended before the real one starts. Small on purpose: the
// loader runs this before any of the CLI is loaded.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { assertTrustedPath, deferCaCerts, writeJsonAtomic } from '@smolvm/common';
import { MachineStore, tryAcquireLock, type LockHandle, type MachineRecord } from '@smolvm/machine-store';
import { machineFiles } from './layout';
import { rotateLogFile } from './supervisor-log';

/** What starts a machine's supervisor: exactly this file, these arguments, this environment. */
export interface SupervisorSpawn {
  file: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

export interface SupervisorSpawnOptions {
  imageErofs?: string;
  cold?: boolean;
}

/** The supervisor's invocation for a start of `name`: `supervisorArgv` is the CLI's `machine _supervise`. */
export function supervisorSpawn(
  supervisorArgv: string[],
  name: string,
  opts: SupervisorSpawnOptions,
  env: NodeJS.ProcessEnv,
): SupervisorSpawn {
  return {
    file: supervisorArgv[0],
    args: [
      ...supervisorArgv.slice(1),
      '--name',
      name,
      ...(opts.imageErofs ? ['--image-erofs', opts.imageErofs] : []),
      ...(opts.cold ? ['--cold'] : []),
    ],
    // Our own CLI again: NODE_EXTRA_CA_CERTS deferred as the executable's hashbang does. It
    // outlives this command: SMOLVM_HOME pinned.
    env: deferCaCerts({ ...env, ...(env.SMOLVM_HOME ? { SMOLVM_HOME: path.resolve(env.SMOLVM_HOME) } : {}) }),
  };
}

/** Why `a` is not the invocation `b` (first difference), or undefined if they are the same. */
export function spawnDifference(a: SupervisorSpawn, b: SupervisorSpawn): string | undefined {
  if (a.file !== b.file) return 'the program';
  if (JSON.stringify(a.args) !== JSON.stringify(b.args)) return 'the arguments';
  const keys = new Set([...Object.keys(a.env), ...Object.keys(b.env)]);
  for (const k of keys) if (a.env[k] !== b.env[k]) return `the environment (${k})`;
  return undefined;
}

/**
 * Spawns the supervisor detached, its output appended to the machine's supervisor.log, its start
 * report on the pipe `control` (fd 3). The caller holds the machine's lock.
 */
export function spawnSupervisor(dir: string, s: SupervisorSpawn): { child: ChildProcess; control: net.Socket } {
  const files = machineFiles(dir);
  fs.rmSync(files.lastExit, { force: true });
  rotateLogFile(files.supervisorLog);
  const logFd = fs.openSync(files.supervisorLog, 'a', 0o600);
  try {
    const child = spawn(s.file, s.args, {
      detached: true,
      stdio: ['ignore', logFd, logFd, 'pipe'],
      // It outlives this command: keep no directory of the user's busy.
      cwd: '/',
      env: s.env,
    });
    return { child, control: child.stdio[3] as net.Socket };
  } finally {
    fs.closeSync(logFd);
  }
}

/** A machine's last start, for the next one's early supervisor. */
const START_FILE = 'start.json';

/** What a record says about a start, without the runtime its starts and stops rewrite. */
export function recordKey(record: MachineRecord): string {
  const { runtime: _runtime, ...rest } = record;
  return crypto.createHash('sha256').update(JSON.stringify(rest)).digest('hex');
}

/** Keeps what the next start's loader needs (after a start that used `imageErofs`). */
export function keepStartInvocation(dir: string, record: MachineRecord, imageErofs: string | undefined): void {
  try {
    writeJsonAtomic(path.join(dir, START_FILE), { v: 1, record: recordKey(record), imageErofs: imageErofs ?? null });
  } catch {
    // Only a missed head start next time.
  }
}

/** A supervisor the loader spawned, under the machine's lock, for Machines.start to adopt. */
export interface EarlySupervisor {
  name: string;
  spawn: SupervisorSpawn;
  lock: LockHandle;
  child: ChildProcess;
  control: net.Socket;
  /** Ends it (SIGKILL: its QEMU follows) and waits until it is gone; the lock stays held. */
  end(): Promise<void>;
}

const HANDOFF = Symbol.for('smolvm.early-supervisor');

/**
 * Loader side: spawns the supervisor for `machine start --name <name>` if the machine is stopped,
 * its lock free, and its record unchanged since its last start. Never throws; undefined when
 * nothing was started (and nothing is held).
 */
export function startEarlySupervisor(
  name: string,
  supervisorArgv: string[],
  env: NodeJS.ProcessEnv = process.env,
): EarlySupervisor | undefined {
  if (env.SMOLVM_NO_EARLY_START === '1') return undefined;
  let lock: LockHandle | undefined;
  try {
    const store = new MachineStore({ root: MachineStore.defaultRoot(env) });
    const dir = store.machineDir(name);
    const startFile = path.join(dir, START_FILE);
    // Only a file this user wrote names what runs (assertTrustedPath, as for recipes).
    assertTrustedPath(startFile, store.root);
    const last = JSON.parse(fs.readFileSync(startFile, 'utf8')) as {
      v?: unknown;
      record?: unknown;
      imageErofs?: unknown;
    };
    if (last.v !== 1 || typeof last.record !== 'string') return undefined;
    const imageErofs = typeof last.imageErofs === 'string' ? last.imageErofs : undefined;
    if (imageErofs !== undefined && !fs.existsSync(imageErofs)) return undefined;
    const acquired = tryAcquireLock(store.lockPath(name), { purpose: 'start' });
    if (!('release' in acquired)) return undefined;
    lock = acquired;
    // Read under the lock (store.get checks who wrote it): stopped, not ephemeral, as last started.
    const record = store.get(name);
    const rt = record.runtime;
    if (record.ephemeral || (rt && !rt.stoppedAt) || recordKey(record) !== last.record) {
      lock.release();
      return undefined;
    }
    const s = supervisorSpawn(supervisorArgv, name, imageErofs ? { imageErofs } : {}, env);
    const { child, control } = spawnSupervisor(dir, s);
    const held = lock;
    // Until Machines.start adopts it, nothing here may keep the process alive.
    child.unref();
    control.unref();
    const early: EarlySupervisor = {
      name,
      spawn: s,
      lock: held,
      child,
      control,
      async end() {
        control.destroy();
        if (child.exitCode !== null || child.signalCode !== null) return;
        const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.ref();
        child.kill('SIGKILL');
        await gone;
      },
    };
    (globalThis as Record<symbol, unknown>)[HANDOFF] = early;
    // A CLI that ends without adopting it (a usage error, a crash) ends it too: the lock goes
    // with this process, and no supervisor may run on the disks without it.
    process.once('exit', () => {
      if ((globalThis as Record<symbol, unknown>)[HANDOFF] !== early) return;
      try {
        child.kill('SIGKILL');
      } catch {
        // Gone already.
      }
      held.release();
    });
    return early;
  } catch {
    lock?.release();
    return undefined;
  }
}

/** CLI side: the early supervisor the loader started for machine `name`, once. */
export function takeEarlySupervisor(name: string): EarlySupervisor | undefined {
  const early = (globalThis as Record<symbol, EarlySupervisor | undefined>)[HANDOFF];
  if (!early || early.name !== name) return undefined;
  (globalThis as Record<symbol, unknown>)[HANDOFF] = undefined;
  return early;
}
