import { SmolvmError } from '@smolvm/common';

/** Runs `fn`, which must throw a smolvm error, and returns it for exact assertions. */
export function thrown(fn: () => unknown): SmolvmError {
  try {
    fn();
  } catch (err) {
    if (err instanceof SmolvmError) return err;
    throw new Error(`expected a SmolvmError, got ${String(err)}`);
  }
  throw new Error('expected an error, but nothing was thrown');
}
