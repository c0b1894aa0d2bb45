// The lifecycle of persistent machines, for any front end (the CLI now, the HTTP API later).
// Every change of a machine happens under its lock; read-only calls never change a machine's
// state (a status check of a running machine leaves it running).
import type { ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import {
  ConflictError,
  NotFoundError,
  SmolvmError,
  UsageError,
  delay,
  isProcessAlive,
  smolvmDirs,
  withTimeout,
  type ProcessIdentity,
} from '@smolvm/common';
import type { PackFile } from '@smolvm/pack/local';
import { AgentClient } from '@smolvm/agent-protocol';
import { runRoot, sweepRunDirs } from '@smolvm/runtime';
import {
  MachineStore,
  machineState,
  type MachineRecord,
  type MachineState,
  type NewMachine,
  type SkippedEntry,
} from '@smolvm/machine-store';
import { allocatedBytes, compactDisk, createDisks, growDisk } from './disks';
import { machineFiles } from './layout';
import { connectRunning, connectSupervisor } from './connect';
import { populateFromPack } from './from-pack';
import { readLastExit, type LastExit, type StartReport } from './supervisor';
import {
  keepStartInvocation,
  spawnDifference,
  spawnSupervisor,
  supervisorSpawn,
  type EarlySupervisor,
} from './early-start';
import { SnapshotStore, snapshotsRoot, type SnapshotSummary } from './snapshot-store';
import {
  createMachineFromSnapshot,
  createSnapshot,
  forkMachine,
  getSnapshot,
  listSnapshots,
  removeSnapshot,
  type ForkOptions,
  type FromSnapshotOptions,
  type SnapshotCreateResult,
} from './snapshots';

export interface MachinesOptions {
  store?: MachineStore;
  env?: NodeJS.ProcessEnv;
  /**
   * The command that runs the supervisor entry point (the CLI's hidden `machine _supervise`);
   * `--name NAME [--image-erofs FILE]` is appended. Only `start` needs it.
   */
  supervisorArgv?: string[];
  /** Where snapshots live (default: `<data>/snapshots`). */
  snapshotStore?: SnapshotStore;
}

export interface MachineStatus {
  record: MachineRecord;
  state: MachineState;
  /** Round trip to the guest agent through the supervisor, when running. */
  pingMs?: number;
  /** How the VM last ended, when not running. */
  lastExit?: LastExit;
  disks: { overlayBytes: number; storageBytes: number };
}

export interface StartResult {
  record: MachineRecord;
  alreadyRunning: boolean;
  /** Supervisor spawn to agent ready + init, in ms. */
  bootMs?: number;
  /** Restored from the boot snapshot of the machine's shape rather than booted. */
  restored?: boolean;
  /** Why the start did not come from a boot snapshot, when it did not (for --debug). */
  notes?: string[];
}

/** The supervisor could not boot the machine; carries what the supervisor saw. */
export class MachineStartError extends SmolvmError {
  constructor(
    message: string,
    options: { remedy?: string },
    readonly detail: string[] = [],
  ) {
    super(message, options);
  }
}

export interface StartOptions {
  /** The erofs of the image the machine is pinned to. */
  imageErofs?: string;
  /** Boot the VM rather than restore the boot snapshot of the machine's shape. */
  cold?: boolean;
  timeoutMs?: number;
  /**
   * Aborted (Ctrl-C) before the supervisor is spawned: nothing is started and the start fails. Once it is
   * spawned an abort is the caller's to act on: a caller that goes away leaves the supervisor no ack, so it
   * powers the VM off (and removes an ephemeral machine).
   */
  signal?: AbortSignal;
  /** Called once the supervisor runs. */
  onSpawned?: () => void;
  /**
   * The supervisor the CLI's loader spawned for this start (early-start.ts), holding the machine's
   * lock: adopted if it is the one this start would spawn, else ended first. Either way this start
   * releases the lock.
   */
  early?: EarlySupervisor;
}

const START_LOCK_TIMEOUT_MS = 10 * 60_000;
const PING_TIMEOUT_MS = 5_000;

/** Waits until the process is gone; false if it is still there after `ms`. */
async function waitForExit(id: ProcessIdentity, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (isProcessAlive(id)) {
    if (Date.now() > end) return false;
    await delay(50);
  }
  return true;
}

async function killAndWait(id: ProcessIdentity | undefined): Promise<void> {
  if (!id || !isProcessAlive(id)) return;
  try {
    process.kill(id.pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitForExit(id, 10_000);
}

function tail(file: string, lines = 10): string[] {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines);
  } catch {
    return [];
  }
}

/** Reads the supervisor's one-line report; rejects if it exits or goes silent first. */
function readReport(child: ChildProcess, control: net.Socket, timeoutMs: number, log: string): Promise<StartReport> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(
      () =>
        fail(
          new MachineStartError(
            `the machine did not start within ${timeoutMs / 1000} s`,
            { remedy: `see ${log}` },
            tail(log),
          ),
        ),
      timeoutMs,
    );
    const fail = (err: Error) => {
      clearTimeout(timer);
      reject(err);
    };
    control.on('data', (d: Buffer) => {
      buffered += d.toString();
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buffered.slice(0, nl)) as StartReport);
      } catch {
        reject(
          new MachineStartError('the supervisor sent an unreadable start report', { remedy: `see ${log}` }, tail(log)),
        );
      }
    });
    child.once('exit', (code, signal) => {
      // Give a report written just before exiting the chance to arrive first.
      setTimeout(
        () =>
          fail(
            new MachineStartError(
              `the supervisor exited (${signal ?? `exit code ${code}`}) before the machine was ready`,
              { remedy: `see ${log}` },
              tail(log),
            ),
          ),
        100,
      );
    });
    child.once('error', (err) =>
      fail(new MachineStartError(`could not run the supervisor: ${err.message}`, { remedy: 'reinstall smolvm' })),
    );
  });
}

export class Machines {
  readonly store: MachineStore;
  /** Machine snapshots (snapshot-store.ts). */
  readonly snapshots: SnapshotStore;
  private readonly env: NodeJS.ProcessEnv;

  constructor(private readonly options: MachinesOptions = {}) {
    this.env = options.env ?? process.env;
    this.store = options.store ?? new MachineStore(MachineStore.defaultRoot(this.env));
    this.snapshots = options.snapshotStore ?? new SnapshotStore(snapshotsRoot(this.env));
  }

  /**
   * Snapshots the machine: a running one is paused only while its memory and disks are saved.
   * The tag defaults to the next free integer; an existing tag is refused.
   */
  createSnapshot(name: string, opts: { tag?: string } = {}): Promise<SnapshotCreateResult> {
    return createSnapshot(this, name, opts);
  }

  listSnapshots(): Promise<SnapshotSummary[]> {
    return listSnapshots(this);
  }

  /** SnapshotNotFoundError when there is none. */
  getSnapshot(id: string): Promise<SnapshotSummary> {
    return getSnapshot(this, id);
  }

  /** Refused (ConflictError) while machines are built on it. */
  removeSnapshot(id: string): Promise<void> {
    return removeSnapshot(this, id);
  }

  /** A new machine (not started) from a snapshot, with its own network policy and ports. */
  createMachineFromSnapshot(name: string, snapshotId: string, opts: FromSnapshotOptions = {}): Promise<MachineRecord> {
    return createMachineFromSnapshot(this, name, snapshotId, opts);
  }

  /** Snapshot `source`, then create and start each fork (`names`, or BASE-1..BASE-COUNT). */
  forkMachine(
    source: string,
    names: string[] | { count: number; base: string },
    opts: ForkOptions = {},
  ): ReturnType<typeof forkMachine> {
    return forkMachine(this, source, names, opts);
  }

  files(name: string) {
    return machineFiles(this.store.machineDir(name));
  }

  /** Creates the record and both sparse disks; nothing appears unless all of it succeeded. */
  create(input: NewMachine): Promise<MachineRecord> {
    return this.store.create(input, {
      populate: (dir, record) => {
        const files = machineFiles(dir);
        createDisks(
          [
            { file: files.overlayDisk, sizeGiB: record.overlayGiB, label: 'smolvm-overlay' },
            { file: files.storageDisk, sizeGiB: record.storageGiB, label: 'smolvm-storage', shared: true },
          ],
          smolvmDirs(this.env).cache,
        );
      },
    });
  }

  /**
   * A machine made from a .smolmachine (`machine create --from`): the record names the pack, the
   * sections it boots (and its runtime) are imported into the cache, and a pack made with --from-vm
   * brings its disks. `freshExecRoot`: the packed executable's daemon, whose execs each get a root
   * of their own. `runtimeCandidates`: more files that may hold the pack's runtime (the caller's stub).
   */
  createFromPack(
    input: NewMachine,
    pack: PackFile,
    options: { freshExecRoot?: boolean; runtimeCandidates?: string[] } = {},
  ): Promise<MachineRecord> {
    return this.store.create(
      { ...input, from: pack.path },
      {
        populate: (dir, record) =>
          populateFromPack(
            dir,
            pack,
            record,
            smolvmDirs(this.env).cache,
            options.freshExecRoot,
            options.runtimeCandidates,
          ),
      },
    );
  }

  /** running / stopped / created / unreachable, checked against the live supervisor and agent. */
  async status(name: string): Promise<MachineStatus> {
    return this.statusOf(this.store.get(name));
  }

  async statusOf(record: MachineRecord): Promise<MachineStatus> {
    const files = this.files(record.name);
    const disks = { overlayBytes: safeAllocated(files.overlayDisk), storageBytes: safeAllocated(files.storageDisk) };
    const base = machineState(record);
    if (base !== 'running' || !record.runtime) {
      const lastExit = readLastExit(files.lastExit);
      return { record, state: base, disks, ...(lastExit ? { lastExit } : {}) };
    }
    let client: AgentClient | undefined;
    try {
      client = await connectSupervisor(record.runtime.socket);
      const pingMs = await withTimeout(client.ping(), PING_TIMEOUT_MS, 'the agent ping');
      return { record, state: 'running', pingMs, disks };
    } catch {
      return { record, state: machineState(record, { agentReachable: false }), disks };
    } finally {
      client?.close();
    }
  }

  async list(): Promise<{ machines: MachineStatus[]; skipped: SkippedEntry[] }> {
    const listing = this.store.list();
    return { machines: await Promise.all(listing.machines.map((r) => this.statusOf(r))), skipped: listing.skipped };
  }

  /**
   * Starts the machine's supervisor and returns once the guest agent is ready and init ran.
   * Starting a running machine is a no-op; two concurrent starts start one VM (the lock).
   */
  async start(name: string, opts: StartOptions = {}): Promise<StartResult> {
    const argv = this.options.supervisorArgv;
    if (!argv?.length) throw new SmolvmError('Machines.start needs supervisorArgv');
    const early = opts.early;
    try {
      return await this.store.withMachineLock(
        name,
        async () => {
          let earlyUsed = false;
          try {
            const status = await this.status(name);
            if (status.state === 'running') return { record: status.record, alreadyRunning: true };
            if (status.state === 'unreachable') {
              throw new ConflictError(`machine "${name}" is running but its agent does not answer`, {
                remedy: `stop it with \`smolvm machine stop --name ${name}\` (it is killed if it does not stop), then start it again`,
              });
            }
            if (status.record.ephemeral && status.record.runtime) {
              throw new ConflictError(
                `machine "${name}" was started by \`machine run -d\` and has ended; an ephemeral machine is never started again`,
                {
                  remedy: `remove it with \`smolvm machine delete ${name}\` and start a new one with \`smolvm machine run -d\``,
                },
              );
            }
            // A supervisor that died (SIGKILL) takes QEMU with it, but make sure before booting on the same disks.
            await killAndWait(status.record.runtime?.vm);
            const files = this.files(name);
            const wanted = supervisorSpawn(
              argv,
              name,
              { ...(opts.imageErofs ? { imageErofs: opts.imageErofs } : {}), cold: opts.cold === true },
              this.env,
            );
            const differs = early && spawnDifference(early.spawn, wanted);
            const adopted = early && !differs ? early : undefined;
            earlyUsed = true;
            // Not the supervisor this start needs (the machine or its image changed): gone before another starts.
            if (early && !adopted) await early.end();
            // Checked with nothing awaited until the spawn: a signal handler cannot run in between.
            if (opts.signal?.aborted) {
              await adopted?.end();
              throw new SmolvmError(`interrupted (${String(opts.signal.reason)}) before machine "${name}" started`);
            }
            const { child, control } = adopted ?? spawnSupervisor(this.store.machineDir(name), wanted);
            if (adopted) {
              child.ref();
              control.ref();
            }
            opts.onSpawned?.();
            try {
              const report = await readReport(child, control, opts.timeoutMs ?? 300_000, files.supervisorLog);
              if (!report.ok)
                throw new MachineStartError(
                  report.message,
                  report.remedy ? { remedy: report.remedy } : {},
                  report.detail ?? [],
                );
              const record = await this.store.update(
                name,
                (r) => ({
                  ...r,
                  runtime: {
                    pid: report.pid,
                    startTime: report.startTime,
                    socket: report.socket,
                    startedAt: new Date().toISOString(),
                    vm: report.vm,
                  },
                }),
                { purpose: 'start' },
              );
              // The supervisor keeps the VM only once it hears the record is committed.
              await new Promise<void>((resolve) => control.end('ack\n', () => resolve()));
              child.unref();
              // The next start's loader can spawn this same supervisor before the CLI has loaded.
              keepStartInvocation(this.store.machineDir(name), record, opts.imageErofs);
              return {
                record,
                alreadyRunning: false,
                bootMs: report.bootMs,
                restored: report.restored === true,
                notes: [
                  ...(differs
                    ? [`the supervisor spawned early was not used (${differs} differed): started again`]
                    : []),
                  ...(report.notes ?? []),
                ],
              };
            } catch (err) {
              control.destroy();
              child.unref();
              if (child.pid && child.exitCode === null) await waitForExit({ pid: child.pid, startTime: null }, 15_000);
              throw err;
            }
          } finally {
            // Returned or refused before it could be adopted: ended while the lock is still held.
            if (early && !earlyUsed) await early.end();
          }
        },
        { purpose: 'start', timeoutMs: START_LOCK_TIMEOUT_MS, ...(early ? { held: early.lock } : {}) },
      );
    } finally {
      // The loader's lock goes with this start, however it ended (withMachineLock released it
      // already unless it threw before taking it over).
      early?.lock.release();
    }
  }

  /**
   * `machine run -d`: an ephemeral machine (record + temporary disks in its directory) started by
   * the persistent machines' supervisor; `stop` removes it. Without a name one is generated.
   * A machine that fails to start is removed again: nothing is left of a failed run.
   */
  async runDetached(
    input: Omit<NewMachine, 'ephemeral' | 'runtime' | 'name'> & { name?: string },
    opts: StartOptions = {},
  ): Promise<StartResult> {
    const record =
      input.name !== undefined
        ? await this.create({ ...input, name: input.name, ephemeral: true })
        : await ephemeralNamed((name) => this.create({ ...input, name, ephemeral: true }));
    return this.startOrRemove(record.name, opts);
  }

  /**
   * An ephemeral machine (named like `machine run -d`'s) made from a snapshot and resumed, for a
   * one-shot run of a packed running machine; `delete` (or `stop`) removes it with its disks.
   */
  async runFromSnapshot(
    snapshotId: string,
    opts: FromSnapshotOptions = {},
    startOpts: StartOptions = {},
  ): Promise<StartResult> {
    const record = await ephemeralNamed((name) =>
      createMachineFromSnapshot(this, name, snapshotId, { ...opts, ephemeral: true }),
    );
    return this.startOrRemove(record.name, startOpts);
  }

  /** A machine that fails to start is removed again: nothing is left of a failed run. */
  private async startOrRemove(name: string, opts: StartOptions): Promise<StartResult> {
    try {
      return await this.start(name, opts);
    } catch (err) {
      await this.delete(name, { force: true }).catch((e: unknown) => {
        if (!(e instanceof NotFoundError)) throw e;
      });
      throw err;
    }
  }

  /**
   * Graceful: the supervisor asks the guest to power off and waits; a supervisor that does not
   * answer is terminated, then killed. Stopping a stopped machine is a no-op (false).
   */
  async stop(name: string, opts: { timeoutMs?: number } = {}): Promise<boolean> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    return this.store.withMachineLock(
      name,
      async () => {
        const record = this.store.get(name);
        const rt = record.runtime;
        if (!rt || rt.stoppedAt) {
          if (record.ephemeral) await this.store.delete(name);
          return false;
        }
        const supervisor = { pid: rt.pid, startTime: rt.startTime };
        const wasRunning = isProcessAlive(supervisor);
        if (wasRunning) {
          try {
            const client = await connectSupervisor(rt.socket);
            await withTimeout(client.shutdown(), timeoutMs, 'the shutdown');
            client.close();
          } catch {
            try {
              process.kill(rt.pid, 'SIGTERM');
            } catch {
              // Already gone.
            }
          }
          if (!(await waitForExit(supervisor, timeoutMs))) await killAndWait(supervisor);
        }
        await killAndWait(rt.vm);
        this.sweepRunDirs();
        // An ephemeral machine (run -d) goes with its disks once its VM is gone: nothing is left.
        if (record.ephemeral) {
          await this.store.delete(name);
          return wasRunning;
        }
        // A machine whose supervisor had crashed is marked stopped too: its state is now settled.
        await this.store.update(name, (r) => ({ ...r, runtime: { ...rt, stoppedAt: new Date().toISOString() } }), {
          purpose: 'stop',
        });
        return wasRunning;
      },
      { purpose: 'stop', timeoutMs: START_LOCK_TIMEOUT_MS },
    );
  }

  /** Removes the machine and its disks; a running machine only with `force` (killed at once). */
  async delete(name: string, opts: { force?: boolean } = {}): Promise<void> {
    await this.store.delete(name, {
      timeoutMs: START_LOCK_TIMEOUT_MS,
      guard: async (record) => {
        const rt = record?.runtime;
        if (!rt || rt.stoppedAt) return;
        const supervisor = { pid: rt.pid, startTime: rt.startTime };
        if (!isProcessAlive(supervisor) && !(rt.vm && isProcessAlive(rt.vm))) return;
        if (!opts.force) {
          throw new ConflictError(`machine "${name}" is running`, {
            remedy: `stop it first with \`smolvm machine stop --name ${name}\`, or delete it anyway with \`smolvm machine delete ${name} -f\``,
          });
        }
        await killAndWait(supervisor);
        await killAndWait(rt.vm);
        this.sweepRunDirs();
      },
    });
  }

  /** A killed supervisor leaves its run dir (control socket) behind; it is stale once its owner is gone. */
  private sweepRunDirs(): void {
    sweepRunDirs(runRoot(this.env));
  }

  /** A client connected to the running machine's supervisor (exec, cp). */
  async connect(name: string): Promise<AgentClient> {
    return connectRunning(this.store.get(name));
  }

  /** Changes vCPUs and memory, and grows disks; the machine must be stopped. */
  async resize(
    name: string,
    changes: { cpus?: number; memoryMiB?: number; storageGiB?: number; overlayGiB?: number },
  ): Promise<MachineRecord> {
    return this.store.withMachineLock(
      name,
      async () => {
        await this.requireStopped(name, 'machine resize');
        const record = this.store.get(name);
        if (record.fromSnapshot && (changes.storageGiB !== undefined || changes.overlayGiB !== undefined))
          throw forkDiskError(name, 'its disks cannot be grown');
        for (const [key, disk] of [
          ['storageGiB', 'storage'],
          ['overlayGiB', 'overlay'],
        ] as const) {
          const want = changes[key];
          if (want !== undefined && want < record[key]) {
            throw new UsageError(`the ${disk} disk can only grow: it is ${record[key]} GiB, asked for ${want} GiB`, {
              remedy: `give --${disk} ${record[key]} or more`,
            });
          }
        }
        const files = this.files(name);
        if (changes.storageGiB !== undefined) growDisk(files.storageDisk, changes.storageGiB);
        if (changes.overlayGiB !== undefined) growDisk(files.overlayDisk, changes.overlayGiB);
        return this.store.update(name, (r) => ({ ...r, ...definedOnly(changes) }), { purpose: 'resize' });
      },
      { purpose: 'resize' },
    );
  }

  /** Returns the disks' free blocks to the host; the machine must be stopped. Bytes reclaimed. */
  async prune(name: string): Promise<{ overlayBytes: number; storageBytes: number }> {
    return this.store.withMachineLock(
      name,
      async () => {
        await this.requireStopped(name, 'machine prune');
        if (this.store.get(name).fromSnapshot)
          throw forkDiskError(name, "machine prune does not apply (a fork's disks hold only what it changed)");
        const files = this.files(name);
        return { overlayBytes: compactDisk(files.overlayDisk), storageBytes: compactDisk(files.storageDisk) };
      },
      { purpose: 'prune' },
    );
  }

  private async requireStopped(name: string, what: string): Promise<void> {
    const { state, record } = await this.status(name);
    if (record.ephemeral) {
      throw new ConflictError(
        `${what} is for persistent machines; machine "${name}" is ephemeral (machine run -d) and its disks go when it stops`,
        { remedy: `create a persistent machine with \`smolvm machine create NAME\`` },
      );
    }
    if (state === 'running' || state === 'unreachable') {
      throw new ConflictError(`${what} requires the VM to be stopped; machine "${name}" is running`, {
        remedy: `stop it first with \`smolvm machine stop --name ${name}\``,
      });
    }
  }
}

/** A fork's disks are qcow2 layers over its snapshot's: the ext4 tools cannot work on them. */
function forkDiskError(name: string, what: string): UsageError {
  return new UsageError(`machine "${name}" is a fork of a snapshot: ${what}`, {
    remedy: `create a new machine with the size you need (\`smolvm machine create NEW --storage GiB\`) and copy what you need across with \`smolvm machine cp\``,
  });
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function safeAllocated(file: string): number {
  try {
    return allocatedBytes(file);
  } catch {
    return 0;
  }
}

/** Makes an ephemeral machine under a generated name (`run-<8 hex>`). */
async function ephemeralNamed(create: (name: string) => Promise<MachineRecord>): Promise<MachineRecord> {
  // A clash of 32 random bits is all but impossible; a few tries cover it anyway.
  for (let attempt = 0; ; attempt++) {
    try {
      return await create(`run-${crypto.randomBytes(4).toString('hex')}`);
    } catch (err) {
      if (!(err instanceof ConflictError) || attempt >= 4) throw err;
    }
  }
}
