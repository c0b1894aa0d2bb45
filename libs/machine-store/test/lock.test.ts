import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { ConflictError, formatError, processStartTime } from '@smolvm/common';
import { MachineStore, acquireLock, tryAcquireLock, type LockHolder } from '../src';
import { inspectLock, installStaged, isHolderStale, removeHolder, stageHolder } from '../src/lock';
import { currentBootId } from '../src/staging';
import { bundleFixture, startChild, tempDir } from './helpers';

let work: string;
let childScript: string;
let root: string;
let store: MachineStore;

beforeAll(() => {
  work = tempDir('lock');
  childScript = bundleFixture('lock-child', work);
}, 30_000);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

beforeEach(() => {
  root = fs.mkdtempSync(path.join(work, 'root-'));
  store = new MachineStore({ root, lockTimeoutMs: 2_000 });
});

const selfStart = processStartTime(process.pid);

/** Puts a lock in place by hand, as some other process would have left it. */
function plantHolder(lockPath: string, holder: Partial<LockHolder> & { token?: string }, content?: string): string {
  const full: LockHolder = {
    pid: process.pid,
    startTime: selfStart,
    bootId: currentBootId(),
    token: 'feedface',
    acquiredAt: '2025-01-01T00:00:00.000Z',
    ...holder,
  };
  fs.mkdirSync(lockPath, { recursive: true });
  const file = path.join(lockPath, `holder-${full.token}.json`);
  fs.writeFileSync(file, content ?? JSON.stringify(full));
  return file;
}

function holderFiles(lockPath: string): string[] {
  return fs.existsSync(lockPath) ? fs.readdirSync(lockPath) : [];
}

describe('acquire and release', () => {
  it('records pid, start time and purpose, and releases idempotently', async () => {
    const lock = await store.acquireLock('vm', { purpose: 'start' });
    expect(lock.holder).toMatchObject({
      pid: process.pid,
      startTime: selfStart,
      bootId: currentBootId(),
      purpose: 'start',
    });
    expect(store.lockHolder('vm')).toEqual(lock.holder);
    expect(holderFiles(store.lockPath('vm'))).toEqual([`holder-${lock.holder.token}.json`]);
    expect(lock.isHeld()).toBe(true);
    expect(lock.release()).toBe(true);
    expect(lock.release()).toBe(false);
    expect(lock.isHeld()).toBe(false);
    expect(fs.existsSync(store.lockPath('vm'))).toBe(false);
    expect(store.lockHolder('vm')).toBeNull();
    // No staging directories left beside the lock.
    expect(fs.readdirSync(path.join(root, '.locks'))).toEqual([]);
  });

  it('makes a second taker wait, then names the holder when it gives up', async () => {
    const lock = await store.acquireLock('vm', { purpose: 'start' });
    const err = await store.acquireLock('vm', { timeoutMs: 150 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect(formatError(err)).toMatch(
      new RegExp(
        `^error: machine "vm" is locked by pid ${process.pid} \\(start\\) since \\S+ \\(waited 0\\.\\d+ s\\); ` +
          `wait for that command to finish and retry, or stop it with \`kill ${process.pid}\` if it is stuck$`,
      ),
    );
    expect(lock.isHeld()).toBe(true);
    const tried = tryAcquireLock(store.lockPath('vm'));
    expect('release' in tried ? 'acquired' : tried.holder?.token).toBe(lock.holder.token);
    lock.release();
    expect(fs.readdirSync(path.join(root, '.locks'))).toEqual([]);
  });

  it('hands the lock to a waiter once released', async () => {
    const first = await store.acquireLock('vm');
    setTimeout(() => first.release(), 100);
    const second = await store.acquireLock('vm', { timeoutMs: 5_000 });
    expect(second.holder.token).not.toBe(first.holder.token);
    expect(second.isHeld()).toBe(true);
    second.release();
  });

  it('serialises concurrent users within one process', async () => {
    let inside = 0;
    let maxInside = 0;
    await Promise.all(
      Array.from({ length: 8 }, () =>
        store.withMachineLock('vm', async () => {
          inside++;
          maxInside = Math.max(maxInside, inside);
          await new Promise((r) => setTimeout(r, 5));
          inside--;
        }),
      ),
    );
    expect(maxInside).toBe(1);
  });

  it('is re-entrant along one async chain, so update and delete work inside withMachineLock', async () => {
    await store.create({ name: 'vm' });
    const result = await store.withMachineLock(
      'vm',
      async (outer) => {
        const updated = await store.update('vm', (r) => ({ ...r, cpus: 2 }), { timeoutMs: 0 });
        const nested = await store.withMachineLock('vm', (inner) => inner.holder.token, { timeoutMs: 0 });
        expect(nested).toBe(outer.holder.token);
        // Another machine's lock nests normally.
        await store.withMachineLock('other', () => undefined, { timeoutMs: 0 });
        expect(outer.isHeld()).toBe(true);
        await store.delete('vm', { timeoutMs: 0 });
        return updated.cpus;
      },
      { timeoutMs: 0 },
    );
    expect(result).toBe(2);
    expect(store.exists('vm')).toBe(false);
    expect(fs.readdirSync(path.join(root, '.locks'))).toEqual([]);
  });

  it('records when the lock was obtained, not when the wait began', async () => {
    const first = await store.acquireLock('vm');
    let releasedAt = Infinity;
    setTimeout(() => {
      releasedAt = Date.now();
      first.release();
    }, 100);
    const second = await store.acquireLock('vm', { timeoutMs: 5_000 });
    // Ordering, not timing: the stamp is taken after the release it waited for.
    expect(Date.parse(second.holder.acquiredAt)).toBeGreaterThanOrEqual(releasedAt);
    expect(store.lockHolder('vm')?.acquiredAt).toBe(second.holder.acquiredAt);
    second.release();
  });

  it('withMachineLock releases when fn throws', async () => {
    await expect(
      store.withMachineLock('vm', () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(store.lockHolder('vm')).toBeNull();
    expect(fs.existsSync(store.lockPath('vm'))).toBe(false);
  });

  it('locks are per machine', async () => {
    const a = await store.acquireLock('a');
    const b = await store.acquireLock('b', { timeoutMs: 0 });
    a.release();
    b.release();
  });

  it('validates the name', async () => {
    await expect(store.acquireLock('../x')).rejects.toThrow('invalid machine name');
  });
});

describe('stale holders', () => {
  it('takes over from a holder that was SIGKILLed', async () => {
    const child = startChild(childScript, ['hold', root, 'vm']);
    const line = await child.waitForLine(/^locked \d+$/);
    const childPid = Number(line.split(' ')[1]);
    expect(store.lockHolder('vm')).toMatchObject({ pid: childPid, purpose: 'hold' });
    await expect(store.acquireLock('vm', { timeoutMs: 0 })).rejects.toThrow(`locked by pid ${childPid} (hold)`);
    child.proc.kill('SIGKILL');
    expect(await child.exited).toBe('SIGKILL');
    expect(store.lockHolder('vm')).toBeNull();
    // The dead holder's file is still there: only a taker removes it.
    expect(holderFiles(store.lockPath('vm'))).toHaveLength(1);
    const lock = await store.acquireLock('vm', { timeoutMs: 0 });
    expect(lock.holder.pid).toBe(process.pid);
    expect(holderFiles(store.lockPath('vm'))).toEqual([`holder-${lock.holder.token}.json`]);
    lock.release();
  });

  it('releases on a clean exit even without release()', async () => {
    const child = startChild(childScript, ['exit', root, 'vm']);
    expect(await child.exited).toBe(0);
    expect(fs.existsSync(store.lockPath('vm'))).toBe(false);
  });

  it('treats a live pid with another start time as a recycled pid (stale)', async () => {
    const lockPath = store.lockPath('vm');
    plantHolder(lockPath, { startTime: (selfStart ?? 0) + 12345 });
    expect(
      isHolderStale({
        pid: process.pid,
        startTime: (selfStart ?? 0) + 12345,
        bootId: null,
        token: 'x',
        acquiredAt: '',
      }),
    ).toBe(true);
    const lock = await store.acquireLock('vm', { timeoutMs: 0 });
    expect(holderFiles(lockPath)).toEqual([`holder-${lock.holder.token}.json`]);
    lock.release();
  });

  it('treats a holder from an earlier boot as stale', async () => {
    plantHolder(store.lockPath('vm'), { bootId: 'some-other-boot' });
    const boot = currentBootId();
    if (boot !== null) {
      const lock = await store.acquireLock('vm', { timeoutMs: 0 });
      lock.release();
    }
  });

  it('does not take over from a live process with the right start time', async () => {
    const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      const pid = sleeper.pid as number;
      // /proc/PID/stat exists as soon as spawn returns a pid.
      plantHolder(store.lockPath('vm'), { pid, startTime: processStartTime(pid), purpose: 'boot' });
      await expect(store.acquireLock('vm', { timeoutMs: 50 })).rejects.toThrow(`is locked by pid ${pid} (boot)`);
      expect(store.lockHolder('vm')?.pid).toBe(pid);
    } finally {
      sleeper.kill('SIGKILL');
    }
  });

  it('takes over a holder file left empty by a crash', async () => {
    plantHolder(store.lockPath('vm'), {}, '');
    expect(inspectLock(store.lockPath('vm')).state).toBe('unreadable');
    const lock = await store.acquireLock('vm', { timeoutMs: 0 });
    lock.release();
  });

  it('treats an empty lock directory as free', async () => {
    fs.mkdirSync(store.lockPath('vm'), { recursive: true });
    const lock = await store.acquireLock('vm', { timeoutMs: 0 });
    lock.release();
  });

  it('refuses a lock directory with foreign files, with a remedy', async () => {
    const lockPath = store.lockPath('vm');
    fs.mkdirSync(lockPath, { recursive: true });
    fs.writeFileSync(path.join(lockPath, 'README'), 'x');
    const err = await store.acquireLock('vm', { timeoutMs: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as ConflictError).message).toContain('holds unexpected files (README)');
    expect((err as ConflictError).remedy).toContain(`remove ${lockPath}`);
    expect(fs.readdirSync(path.join(root, '.locks'))).toEqual(['vm.lock']);
  });
});

describe('takeover race', () => {
  it('a contender acting on an old reading cannot remove the new holder', () => {
    // Interleaving, step by step, of two contenders A and B that both saw the same dead holder.
    const lockPath = path.join(root, 'x.lock');
    const deadFile = plantHolder(lockPath, { startTime: (selfStart ?? 0) + 1, token: 'dead01' });
    const seenByA = inspectLock(lockPath);
    const seenByB = inspectLock(lockPath);
    expect(seenByA).toMatchObject({ state: 'held', file: deadFile });
    expect(seenByB).toMatchObject({ state: 'held', file: deadFile });
    if (seenByA.state !== 'held' || seenByB.state !== 'held') throw new Error('unreachable');
    expect(isHolderStale(seenByA.holder) && isHolderStale(seenByB.holder)).toBe(true);

    const a = stageHolder(lockPath, 'A');
    const b = stageHolder(lockPath, 'B');
    // A removes the dead holder and moves in.
    expect(removeHolder(seenByA.file)).toBe(true);
    expect(installStaged(a.staged, lockPath)).toBe(true);
    // B, still acting on its old reading, removes "the dead holder": a no-op, not A's file.
    expect(removeHolder(seenByB.file)).toBe(false);
    expect(installStaged(b.staged, lockPath)).toBe(false);
    const now = inspectLock(lockPath);
    expect(now).toMatchObject({ state: 'held', holder: { token: a.holder.token, purpose: 'A' } });
    fs.rmSync(b.staged, { recursive: true });
  });

  it('when both remove the dead holder, exactly one rename wins', () => {
    const lockPath = path.join(root, 'y.lock');
    const deadFile = plantHolder(lockPath, { startTime: (selfStart ?? 0) + 1, token: 'dead02' });
    const a = stageHolder(lockPath);
    const b = stageHolder(lockPath);
    expect([removeHolder(deadFile), removeHolder(deadFile)]).toEqual([true, false]);
    expect([installStaged(b.staged, lockPath), installStaged(a.staged, lockPath)]).toEqual([true, false]);
    expect(holderFiles(lockPath)).toEqual([`holder-${b.holder.token}.json`]);
    fs.rmSync(a.staged, { recursive: true });
  });

  it('many processes racing to take over stale locks: one holder at a time, every time', async () => {
    const lockPath = store.lockPath('vm');
    plantHolder(lockPath, { startTime: (selfStart ?? 0) + 1, token: 'dead03' });
    const goFile = path.join(root, 'go');
    const marker = path.join(root, 'inside');
    const rounds = 6;
    const children = Array.from({ length: 8 }, () =>
      startChild(childScript, ['race', root, 'vm', goFile, marker, String(rounds)]),
    );
    await Promise.all(children.map((c) => c.waitForLine(/^ready$/, 15_000)));
    fs.writeFileSync(goFile, '');
    await Promise.all(children.map((c) => c.exited));
    expect(children.map((c) => c.stderr())).toEqual(children.map(() => ''));
    const results = children.map(
      (c) => JSON.parse(c.lines[c.lines.length - 1] ?? 'null') as { overlaps: number } | null,
    );
    expect(results.map((r) => r?.overlaps)).toEqual(children.map(() => 0));
    // The last taker's abandoned holder is all that is left, and it is stale.
    const last = inspectLock(lockPath);
    expect(last.state).toBe('held');
    if (last.state === 'held') expect(isHolderStale(last.holder)).toBe(true);
    expect(holderFiles(lockPath)).toHaveLength(1);
    const lock = await store.acquireLock('vm', { timeoutMs: 0 });
    lock.release();
    expect(fs.readdirSync(path.join(root, '.locks'))).toEqual([]);
  }, 30_000);
});

describe('acquireLock on any path', () => {
  it('works outside a store and cleans up its staging on timeout', async () => {
    const lockPath = path.join(root, 'custom', 'thing.lock');
    const lock = await acquireLock(lockPath, { subject: 'the thing' });
    await expect(acquireLock(lockPath, { timeoutMs: 20 })).rejects.toThrow(
      `lock ${lockPath} is locked by pid ${process.pid}`,
    );
    expect(fs.readdirSync(path.join(root, 'custom'))).toEqual(['thing.lock']);
    lock.release();
  });
});
