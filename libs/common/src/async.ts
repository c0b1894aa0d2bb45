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
