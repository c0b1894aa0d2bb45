// Small promise helpers every lib ended up writing: a deadline that names what it waited for.
import { SmolvmError } from './errors';

/** Rejects with "WHAT timed out after N s" unless `promise` settles first; the timer never outlives it. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new SmolvmError(`${what} timed out after ${ms / 1000} s`)), ms);
    }),
  ]);
}

export interface DelayOptions {
  /** Let the process exit while only this timer is pending (background waits, polling a child). */
  unref?: boolean;
  /** Ends the wait early, resolving rather than rejecting: the caller checks the signal next. */
  signal?: AbortSignal;
}

/** Resolves after `ms`, or as soon as `signal` aborts. */
export function delay(ms: number, options: DelayOptions = {}): Promise<void> {
  const { unref = false, signal } = options;
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (unref) timer.unref();
    signal?.addEventListener('abort', done, { once: true });
  });
}
