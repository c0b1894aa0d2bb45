// Machine records on disk. Layout under the root (default `<data>/machines`):
//
//   <name>/machine.json          one directory per machine; room for disks, sockets, logs
//   .locks/<name>.lock/          per-machine lock (see lock.ts)
//   .tmp-<pid>-<start>-<rand>-<name>     a machine being created (renamed to <name> when complete)
//   .trash-<pid>-<start>-<rand>-<name>   a machine being deleted (already invisible)
//
// Machines appear and disappear by a single rename of a whole directory, so no reader ever
// sees half a machine; mutations of one name are serialised by its lock.
import { AsyncLocalStorage } from 'node:async_hooks';
import fs from 'node:fs';
import path from 'node:path';
import {
  ConflictError,
  NotFoundError,
  SmolvmError,
  UntrustedPathError,
  assertTrustedPath,
  ensurePrivateDir,
  fsyncDir,
  isProcessAlive,
  smolvmDirs,
  writeJsonAtomic,
} from '@smolvm/common';
import { validateMachineName, isValidMachineName } from './names';
import {
  MachineRecordError,
  machineRecordJson,
  newMachineRecord,
  parseMachineRecord,
  validateMachineRecord,
  type MachineRecord,
  type NewMachine,
} from './record';
import {
  acquireLock,
  DEFAULT_LOCK_TIMEOUT_MS,
  readLockHolder,
  type AcquireOptions,
  type LockHandle,
  type LockHolder,
} from './lock';
import { parseStagingName, stagingName } from './staging';

export const RECORD_FILE = 'machine.json';

/** Locks held by the current async call chain, by lock path: what makes withMachineLock re-entrant. */
const heldLocks = new AsyncLocalStorage<ReadonlyMap<string, LockHandle>>();
const LOCKS_DIR = '.locks';

export type SkipReason = 'in-progress' | 'leftover' | 'invalid-name' | 'not-a-directory' | 'incomplete' | 'corrupt';

export interface SkippedEntry {
  /** Directory entry name under the root. */
  entry: string;
  path: string;
  /**
   * in-progress: a live process is creating/deleting it (normal, not worth showing).
   * leftover: temp/trash of a process that died; `sweep()` removes it.
   * The rest need a human: the entry is not a machine smolvm can use.
   */
  reason: SkipReason;
  detail: string;
}

export interface MachineListing {
  /** Sorted by name. */
  machines: MachineRecord[];
  skipped: SkippedEntry[];
}

export interface MachineStoreOptions {
  /** Directory holding one directory per machine. Default `<smolvmDirs().data>/machines`. */
  root?: string;
  /** Default wait for a machine lock held by another command. */
  lockTimeoutMs?: number;
}

export interface LockWaitOptions {
  timeoutMs?: number;
}

export interface CreateOptions extends LockWaitOptions {
  /**
   * Fills the machine's directory (disks) before it appears: `dir` is still the temp directory,
   * so a failure here leaves no machine behind.
   */
  populate?: (dir: string, record: MachineRecord) => void | Promise<void>;
}

export interface DeleteOptions extends LockWaitOptions {
  /**
   * Runs under the lock before anything is removed; throw to refuse (e.g. "machine is running").
   * Gets undefined when the record is unreadable, so a corrupt machine can still be deleted.
   */
  guard?: (record: MachineRecord | undefined) => void | Promise<void>;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

function lexists(p: string): boolean {
  try {
    fs.lstatSync(p);
    return true;
  } catch (err) {
    if (errno(err) === 'ENOENT') return false;
    throw err;
  }
}

function notFound(name: string): NotFoundError {
  return new NotFoundError(`machine "${name}" does not exist`, {
    remedy: 'see existing machines with `smolvm machine ls`',
  });
}

export class MachineStore {
  readonly root: string;
  private readonly lockTimeoutMs: number;

  static defaultRoot(env: NodeJS.ProcessEnv = process.env): string {
    return path.join(smolvmDirs(env).data, 'machines');
  }

  constructor(options: string | MachineStoreOptions = {}) {
    const opts = typeof options === 'string' ? { root: options } : options;
    this.root = path.resolve(opts.root ?? MachineStore.defaultRoot());
    this.lockTimeoutMs = opts.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  }

  /** The machine's directory (which may not exist). Validates the name first. */
  machineDir(name: string): string {
    validateMachineName(name);
    return path.join(this.root, name);
  }

  recordPath(name: string): string {
    return path.join(this.machineDir(name), RECORD_FILE);
  }

  lockPath(name: string): string {
    validateMachineName(name);
    return path.join(this.root, LOCKS_DIR, `${name}.lock`);
  }

  exists(name: string): boolean {
    return lexists(this.machineDir(name));
  }

  /**
   * Reads and validates a record. Reads take no lock: records are only ever replaced whole.
   * A record another user could have written is refused: it decides what a start shares with
   * the guest, forwards and runs, and which process a stop kills.
   */
  get(name: string): MachineRecord {
    const file = this.recordPath(name);
    let text: string;
    try {
      assertTrustedPath(file, this.root);
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if (err instanceof UntrustedPathError)
        throw new MachineRecordError(file, err.message, { remedy: err.remedy, cause: err });
      const code = errno(err);
      if (code === 'ENOENT' && !lexists(path.dirname(file))) throw notFound(name);
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        throw new MachineRecordError(file, `machine "${name}" is incomplete: ${file} is missing`, {
          remedy: `remove it with \`smolvm machine delete ${name}\``,
          cause: err,
        });
      }
      throw err;
    }
    return parseMachineRecord(text, file, name);
  }

  /** Every usable machine, sorted; anything else in the root is reported, never fatal. */
  list(): MachineListing {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(this.root, { withFileTypes: true });
    } catch (err) {
      if (errno(err) === 'ENOENT') return { machines: [], skipped: [] };
      throw err;
    }
    const machines: MachineRecord[] = [];
    const skipped: SkippedEntry[] = [];
    for (const dirent of entries) {
      const entry = dirent.name;
      const full = path.join(this.root, entry);
      if (entry === LOCKS_DIR) continue;
      const staging = parseStagingName(entry);
      if (staging) {
        const live = isProcessAlive(staging.owner);
        // An owner that finished between readdir and now took its entry with it: nothing left over.
        if (!live && !fs.existsSync(full)) continue;
        skipped.push({
          entry,
          path: full,
          reason: live ? 'in-progress' : 'leftover',
          detail: `${staging.kind === 'tmp' ? 'creation' : 'deletion'} of "${staging.label}" by pid ${staging.owner.pid}${live ? '' : ', which died'}`,
        });
        continue;
      }
      if (!isValidMachineName(entry)) {
        skipped.push({ entry, path: full, reason: 'invalid-name', detail: `${full} is not a machine smolvm created` });
        continue;
      }
      if (!dirent.isDirectory()) {
        skipped.push({ entry, path: full, reason: 'not-a-directory', detail: `${full} is not a directory` });
        continue;
      }
      const outcome = this.readListed(entry);
      if (outcome === 'gone') continue;
      if ('reason' in outcome) skipped.push({ entry, path: full, ...outcome });
      else machines.push(outcome);
    }
    machines.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { machines, skipped };
  }

  private readListed(name: string): MachineRecord | 'gone' | { reason: SkipReason; detail: string } {
    // Two tries: a delete (and maybe a re-create) can happen between readdir and the read.
    for (let tries = 0; ; tries++) {
      try {
        return this.get(name);
      } catch (err) {
        if (err instanceof NotFoundError) return 'gone';
        if (!(err instanceof MachineRecordError)) throw err;
        if (tries === 0) continue;
        return { reason: lexists(err.file) ? 'corrupt' : 'incomplete', detail: err.message };
      }
    }
  }

  /** Takes the machine's lock (waiting up to the timeout); the name need not exist. */
  async acquireLock(name: string, options: Omit<AcquireOptions, 'subject'> = {}): Promise<LockHandle> {
    return acquireLock(this.lockPath(name), {
      timeoutMs: this.lockTimeoutMs,
      ...options,
      subject: `machine "${name}"`,
    });
  }

  /**
   * Runs `fn` holding the machine's lock; releases it however `fn` ends. Re-entrant along one
   * async call chain: `update`/`delete`/`withMachineLock` called from inside `fn` for the same
   * machine reuse the lock instead of waiting for themselves. Separate chains (two concurrent
   * requests in one process) still exclude each other. `held`: this machine's lock, acquired
   * earlier by this process (tryAcquireLock), which `fn` runs under and which is released after.
   */
  async withMachineLock<T>(
    name: string,
    fn: (lock: LockHandle) => T | Promise<T>,
    options: Omit<AcquireOptions, 'subject'> & { held?: LockHandle } = {},
  ): Promise<T> {
    const lockPath = this.lockPath(name);
    const outer = heldLocks.getStore();
    const mine = outer?.get(lockPath);
    if (mine?.isHeld()) return await fn(mine);
    const { held, ...acquire } = options;
    const lock = held?.isHeld() && held.path === lockPath ? held : await this.acquireLock(name, acquire);
    try {
      return await heldLocks.run(new Map(outer ?? []).set(lockPath, lock), () => fn(lock));
    } finally {
      lock.release();
    }
  }

  /** Who holds the machine's lock right now (null if nobody alive does). */
  lockHolder(name: string): LockHolder | null {
    return readLockHolder(this.lockPath(name));
  }

  /**
   * Creates a machine with defaults filled in, a fresh id and creation time. The directory is
   * built under a temp name and renamed into place, so a crash leaves either no machine or a
   * complete one (plus a leftover temp dir that `sweep()` removes).
   */
  async create(input: NewMachine, options: CreateOptions = {}): Promise<MachineRecord> {
    const record = newMachineRecord(input);
    const dir = this.machineDir(record.name);
    // Owner-only from the state root down: records hold `-e` secrets. Not where get() would refuse it.
    ensurePrivateDir(this.root);
    assertTrustedPath(this.root, this.root, 'dir');
    // Built before taking the lock, so the lock is held only for the check and the rename.
    const tmp = path.join(this.root, stagingName('tmp', record.name));
    fs.mkdirSync(tmp, { mode: 0o700 });
    try {
      if (options.populate) await options.populate(tmp, record);
      writeJsonAtomic(path.join(tmp, RECORD_FILE), machineRecordJson(record));
      await this.withMachineLock(
        record.name,
        () => {
          // Checked under the lock: rename would silently replace an *empty* directory.
          if (lexists(dir)) {
            throw new ConflictError(`machine "${record.name}" already exists`, {
              remedy: `choose another name, or delete it first with \`smolvm machine delete ${record.name}\``,
            });
          }
          fs.renameSync(tmp, dir);
          fsyncDir(this.root);
        },
        { purpose: 'create', ...options },
      );
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    return record;
  }

  /**
   * Read-modify-write under the machine's lock. `fn` gets a private copy and returns the new
   * record, which is validated and replaces machine.json atomically. Throw from `fn` to abort.
   */
  async update(
    name: string,
    fn: (record: MachineRecord) => MachineRecord | Promise<MachineRecord>,
    options: LockWaitOptions & { purpose?: string } = {},
  ): Promise<MachineRecord> {
    return this.withMachineLock(
      name,
      async () => {
        const current = this.get(name);
        const next = validateMachineRecord(await fn(structuredClone(current)));
        for (const key of ['schemaVersion', 'id', 'name', 'createdAt'] as const) {
          if (next[key] !== current[key]) {
            throw new SmolvmError(`update of machine "${name}" tried to change '${key}', which is fixed at creation`);
          }
        }
        writeJsonAtomic(this.recordPath(name), machineRecordJson(next));
        return next;
      },
      { purpose: options.purpose ?? 'update', timeoutMs: options.timeoutMs },
    );
  }

  /**
   * Deletes the machine and everything in its directory. The directory is first renamed to a
   * trash name (one atomic step: the machine is gone), then removed. Returns the record it had,
   * or undefined when that was unreadable.
   */
  async delete(name: string, options: DeleteOptions = {}): Promise<MachineRecord | undefined> {
    const dir = this.machineDir(name);
    return this.withMachineLock(
      name,
      async () => {
        if (!lexists(dir)) throw notFound(name);
        let record: MachineRecord | undefined;
        try {
          record = this.get(name);
        } catch (err) {
          if (!(err instanceof MachineRecordError)) throw err;
        }
        if (options.guard) await options.guard(record);
        const trash = path.join(this.root, stagingName('trash', name));
        fs.renameSync(dir, trash);
        fsyncDir(this.root);
        try {
          fs.rmSync(trash, { recursive: true, force: true });
        } catch {
          // The machine is already gone; what remains is a leftover that `sweep()` removes.
        }
        return record;
      },
      { purpose: 'delete', timeoutMs: options.timeoutMs },
    );
  }

  /** Removes temp and trash directories left by processes that died mid-operation. */
  sweep(): string[] {
    const removed: string[] = [];
    for (const dir of [this.root, path.join(this.root, LOCKS_DIR)]) {
      let entries: string[];
      try {
        entries = fs.readdirSync(dir);
      } catch (err) {
        if (errno(err) === 'ENOENT') continue;
        throw err;
      }
      for (const entry of entries) {
        const staging = parseStagingName(entry);
        if (!staging || isProcessAlive(staging.owner)) continue;
        const full = path.join(dir, entry);
        fs.rmSync(full, { recursive: true, force: true });
        removed.push(full);
      }
    }
    return removed;
  }
}
