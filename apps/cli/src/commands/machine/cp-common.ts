// Helpers shared by file and directory copies.
import { Transform } from 'node:stream';
import { SmolvmError, UsageError } from '@smolvm/common';
import { AgentRequestError } from '@smolvm/agent-protocol';

export interface GuestPath {
  machine: string;
  path: string;
}

/** Passes bytes through, reporting the running total; `onBytes` may throw to fail the stream. */
export function counter(onBytes: (n: number) => void): Transform {
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      try {
        onBytes(n);
      } catch (err) {
        return cb(err as Error);
      }
      cb(null, chunk);
    },
  });
}

export function summary(verb: string, bytes: number, where: string, t0: number, unit = 'bytes'): void {
  const s = (performance.now() - t0) / 1000;
  process.stdout.write(`${verb} ${bytes} ${unit} to ${where} in ${s.toFixed(2)} s (${(bytes / 1e6 / Math.max(s, 0.001)).toFixed(1)} MB/s)\n`);
}

export function explain(err: unknown, where: string): unknown {
  if (!(err instanceof AgentRequestError)) return err;
  const message = err.message.replace(/^agent \w+: /, '');
  switch (err.code) {
    case 'too-large':
      return new UsageError(message, { remedy: 'mount the directory with --volume instead of copying' });
    case 'not-found':
      return new UsageError(`${where}: ${message}`, { remedy: 'check the path (directories must exist)' });
    default:
      return new SmolvmError(`${where}: ${message}`);
  }
}
