// A cross-process lock that survives its holder's death without a daemon and without flock.
//
// The lock at path L is a directory. It is held while L contains one file `holder-<token>.json`
// (pid, start time, boot id of the holder; token unique per acquisition), and free while L is
// absent or empty. Every state change is one atomic filesystem operation:
//
//   acquire   rename(staged, L): a fully built directory holding our holder file. The kernel
//             lets rename replace an absent or *empty* directory and refuses a non-empty one
//             (ENOTEMPTY/EEXIST), so exactly one contender wins and the holder file is never
//             seen half-written.
//   release   unlink(L/holder-<ours>.json), then rmdir(L) (which fails harmlessly if a new
//             holder already moved in).
//   takeover  unlink(L/holder-<stale>.json) of a holder whose process is gone. The name carries
//             the stale acquisition's token, so the unlink can only ever remove that dead
//             acquisition: if another contender took over first and installed its own holder,
//             our unlink gets ENOENT and cannot touch theirs. After the unlink L is empty, and
//             contenders race on rename again, which admits one.
//
// A dead holder stays dead, so deciding "stale" from a possibly old reading is safe; the only
// thing that must be atomic is removing exactly that holder, which the token-named unlink is.
import fs from 'node:fs';
import path from 'node:path';
import { ConflictError, delay, ensurePrivateDir, isProcessAlive, randomHex } from '@smolvm/common';
import { currentBootId, selfIdentity, stagingName } from './staging';

export interface LockHolder {
  pid: number;
  /** Clock ticks since boot; null where /proc is absent (then only the pid is checked). */
  startTime: number | null;
  bootId: string | null;
  /** Unique per acquisition; also the holder file's name. */
  token: string;
  /** RFC 3339. */
  acquiredAt: string;
  /** What the holder is doing, for messages ("create", "start", ...). */
  purpose?: string;
}

export interface AcquireOptions {
  /** How long to wait for a live holder; 0 tries once. Default 10 s. */
  timeoutMs?: number;
  /** Recorded in the lock and shown to whoever has to wait. */
  purpose?: string;
  /** How error messages name the locked thing. Default: the lock path. */
  subject?: string;
}

export interface LockHandle {
  readonly path: string;
  readonly holder: LockHolder;
  /** Gives the lock up. Idempotent; true only on the call that actually released it. */
  release(): boolean;
  /** False once released, or if the lock was (wrongly) taken over from this process. */
  isHeld(): boolean;
}

export const DEFAULT_LOCK_TIMEOUT_MS = 10_000;

const HOLDER_FILE = /^holder-([0-9a-f]+)\.json$/;

function holderFileName(token: string): string {
  return `holder-${token}.json`;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/** What a look into the lock directory found. */
export type LockInspection =
  | { state: 'free' }
  | { state: 'held'; holder: LockHolder; file: string }
  /** A holder file that cannot be parsed: only a crash (power cut) can leave one, so its holder is gone. */
  | { state: 'unreadable'; file: string }
  | { state: 'damaged'; entries: string[] };

function parseHolder(text: string, token: string): LockHolder | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  const intOrNull = (x: unknown): x is number | null => x === null || (typeof x === 'number' && Number.isInteger(x));
  if (typeof o.pid !== 'number' || !Number.isInteger(o.pid) || o.pid <= 0) return null;
  if (!intOrNull(o.startTime) || (o.bootId !== null && typeof o.bootId !== 'string')) return null;
  if (o.token !== token || typeof o.acquiredAt !== 'string') return null;
  const holder: LockHolder = { pid: o.pid, startTime: o.startTime, bootId: o.bootId, token, acquiredAt: o.acquiredAt };
  if (typeof o.purpose === 'string') holder.purpose = o.purpose;
  return holder;
}

export function inspectLock(lockPath: string): LockInspection {
  let entries: string[];
  try {
    entries = fs.readdirSync(lockPath);
  } catch (err) {
    if (errno(err) === 'ENOENT') return { state: 'free' };
    throw err;
  }
  if (entries.length === 0) return { state: 'free' };
  const foreign = entries.filter((e) => !HOLDER_FILE.test(e));
  if (foreign.length > 0) return { state: 'damaged', entries };
  // The protocol never puts two holder files in one lock; if a hand-made copy did, any live one wins.
  let unreadable: string | undefined;
  for (const entry of entries) {
    const file = path.join(lockPath, entry);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if (errno(err) === 'ENOENT') continue; // released while we looked
      throw err;
    }
    const holder = parseHolder(text, (HOLDER_FILE.exec(entry) as RegExpExecArray)[1]);
    if (!holder) {
      unreadable = file;
      continue;
    }
    if (entries.length === 1 || !isHolderStale(holder)) return { state: 'held', holder, file };
    unreadable ??= file;
  }
  return unreadable ? { state: 'unreadable', file: unreadable } : { state: 'free' };
}

/** A holder is stale when its process is gone: no such pid, a recycled pid, or an earlier boot. */
export function isHolderStale(holder: LockHolder): boolean {
  const boot = currentBootId();
  if (holder.bootId !== null && boot !== null && holder.bootId !== boot) return true;
  return !isProcessAlive({ pid: holder.pid, startTime: holder.startTime });
}

/** Removes one specific holder (by file name, i.e. by token). False if it was already gone. */
export function removeHolder(file: string): boolean {
  try {
    fs.unlinkSync(file);
    return true;
  } catch (err) {
    if (errno(err) === 'ENOENT') return false;
    throw err;
  }
}

/** Moves a staged lock directory into place. False if someone else holds the lock. */
export function installStaged(staged: string, lockPath: string): boolean {
  try {
    fs.renameSync(staged, lockPath);
    return true;
  } catch (err) {
    const code = errno(err);
    if (code === 'ENOTEMPTY' || code === 'EEXIST') return false;
    throw err;
  }
}

/** Builds, beside the lock, a directory holding our holder file, ready to be renamed into place. */
export function stageHolder(lockPath: string, purpose?: string): { staged: string; holder: LockHolder } {
  const { pid, startTime } = selfIdentity();
  const holder: LockHolder = {
    pid,
    startTime,
    bootId: currentBootId(),
    token: randomHex(12),
    acquiredAt: new Date().toISOString(),
  };
  if (purpose !== undefined) holder.purpose = purpose;
  const parent = path.dirname(lockPath);
  ensurePrivateDir(parent);
  const staged = path.join(parent, stagingName('tmp', path.basename(lockPath)));
  fs.mkdirSync(staged, { mode: 0o700 });
  try {
    fs.writeFileSync(path.join(staged, holderFileName(holder.token)), JSON.stringify(holder) + '\n', {
      flag: 'wx',
      mode: 0o600,
    });
  } catch (err) {
    fs.rmSync(staged, { recursive: true, force: true });
    throw err;
  }
  return { staged, holder };
}

const held = new Map<string, Handle>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A clean exit with a lock still held (a forgotten release, process.exit() inside fn) should
  // not make the next command wait for stale detection. SIGKILL and crashes rely on that instead.
  process.on('exit', () => {
    for (const handle of [...held.values()]) handle.release();
  });
}

class Handle implements LockHandle {
  private released = false;
  constructor(
    readonly path: string,
    readonly holder: LockHolder,
  ) {}

  private get file(): string {
    return path.join(this.path, holderFileName(this.holder.token));
  }

  release(): boolean {
    if (this.released) return false;
    this.released = true;
    held.delete(this.holder.token);
    let removed = false;
    try {
      removed = removeHolder(this.file);
    } catch {
      // Not fatal: once this process exits, the holder file is stale and the next acquirer removes it.
    }
    try {
      fs.rmdirSync(this.path);
    } catch {
      // Someone already moved in (ENOTEMPTY), or it is gone: either way not ours to remove.
    }
    return removed;
  }

  isHeld(): boolean {
    return !this.released && fs.existsSync(this.file);
  }
}

/** Keeps "locked since" honest after a wait: the staged holder is re-stamped before each install. */
function refreshStaged(staged: string, holder: LockHolder): void {
  const now = new Date().toISOString();
  if (now === holder.acquiredAt) return;
  holder.acquiredAt = now;
  // The staged directory is private until renamed, so an in-place rewrite cannot be seen torn.
  fs.writeFileSync(path.join(staged, holderFileName(holder.token)), JSON.stringify(holder) + '\n');
}

type Attempt = { acquired: true; handle: LockHandle } | { acquired: false; holder: LockHolder | null };

/** One non-blocking round: install, or clear away stale holders and install. */
function attempt(lockPath: string, staged: string, holder: LockHolder, subject: string): Attempt {
  refreshStaged(staged, holder);
  // Bounded: each pass either installs, finds a live holder, or removed a dead one; a lock that
  // keeps flipping between free and held is simply reported busy and retried after a pause.
  for (let pass = 0; pass < 8; pass++) {
    if (installStaged(staged, lockPath)) {
      const handle = new Handle(lockPath, holder);
      held.set(holder.token, handle);
      installExitHook();
      return { acquired: true, handle };
    }
    const seen = inspectLock(lockPath);
    switch (seen.state) {
      case 'free':
        continue;
      case 'unreadable':
        removeHolder(seen.file);
        continue;
      case 'held':
        if (!isHolderStale(seen.holder)) return { acquired: false, holder: seen.holder };
        removeHolder(seen.file);
        continue;
      case 'damaged':
        throw new ConflictError(
          `${subject}: lock directory ${lockPath} holds unexpected files (${seen.entries.join(', ')})`,
          {
            remedy: `make sure no smolvm command is running for it, then remove ${lockPath}`,
          },
        );
    }
  }
  return { acquired: false, holder: null };
}

function busyError(subject: string, lockPath: string, holder: LockHolder | null, timeoutMs: number): ConflictError {
  const waited = timeoutMs > 0 ? ` (waited ${Math.round(timeoutMs / 100) / 10} s)` : '';
  if (!holder) {
    return new ConflictError(`${subject} is locked${waited}: lock ${lockPath} is contended`, {
      remedy: 'retry in a moment',
    });
  }
  const doing = holder.purpose ? ` (${holder.purpose})` : '';
  return new ConflictError(`${subject} is locked by pid ${holder.pid}${doing} since ${holder.acquiredAt}${waited}`, {
    remedy: `wait for that command to finish and retry, or stop it with \`kill ${holder.pid}\` if it is stuck`,
  });
}

/** Takes the lock at `lockPath`, waiting (polling with backoff) up to `timeoutMs` for a live holder. */
export async function acquireLock(lockPath: string, options: AcquireOptions = {}): Promise<LockHandle> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  const subject = options.subject ?? `lock ${lockPath}`;
  const deadline = Date.now() + timeoutMs;
  const { staged, holder } = stageHolder(lockPath, options.purpose);
  let done = false;
  try {
    let backoffMs = 4;
    while (true) {
      const result = attempt(lockPath, staged, holder, subject);
      if (result.acquired) {
        done = true;
        return result.handle;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw busyError(subject, lockPath, result.holder, timeoutMs);
      // Jitter keeps a crowd of waiters from retrying in lockstep.
      await delay(Math.min(left, backoffMs * (0.5 + Math.random())));
      backoffMs = Math.min(backoffMs * 1.6, 200);
    }
  } finally {
    if (!done) fs.rmSync(staged, { recursive: true, force: true });
  }
}

/** One attempt without waiting: the handle, or the live holder that keeps us out (null if unknown). */
export function tryAcquireLock(
  lockPath: string,
  options: Omit<AcquireOptions, 'timeoutMs'> = {},
): LockHandle | { holder: LockHolder | null } {
  const { staged, holder } = stageHolder(lockPath, options.purpose);
  let result: Attempt | undefined;
  try {
    result = attempt(lockPath, staged, holder, options.subject ?? `lock ${lockPath}`);
    return result.acquired ? result.handle : { holder: result.holder };
  } finally {
    if (!result?.acquired) fs.rmSync(staged, { recursive: true, force: true });
  }
}

/** The current live holder, for status output; null when the lock is free or its holder is dead. */
export function readLockHolder(lockPath: string): LockHolder | null {
  const seen = inspectLock(lockPath);
  return seen.state === 'held' && !isHolderStale(seen.holder) ? seen.holder : null;
}
