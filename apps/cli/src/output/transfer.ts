// A throttled one-line progress report for `machine cp` on stderr: bytes so far, percentage and
// rate. Only on a terminal, only for transfers big enough to take a while, so `> file` captures
// the summary line and nothing else.
import { formatBytes } from './progress';

const MIN_BYTES = 8 * 1024 * 1024;
const EVERY_MS = 250;

export interface TransferProgress {
  update(bytes: number): void;
  done(): void;
}

export function transferProgress(options: {
  quiet: boolean;
  total: number;
  verb: string;
  stream?: NodeJS.WriteStream;
}): TransferProgress {
  const stream = options.stream ?? process.stderr;
  if (options.quiet || !stream.isTTY || options.total < MIN_BYTES)
    return { update: () => undefined, done: () => undefined };
  const t0 = Date.now();
  let last = 0;
  let shown = false;
  return {
    update(bytes) {
      const now = Date.now();
      if (now - last < EVERY_MS) return;
      last = now;
      shown = true;
      const rate = bytes / Math.max(0.001, (now - t0) / 1000);
      const pct = Math.floor((bytes / options.total) * 100);
      stream.write(
        `\r\x1b[K${options.verb} ${formatBytes(bytes)} / ${formatBytes(options.total)} (${pct}%) ${formatBytes(rate)}/s`,
      );
    },
    done() {
      if (shown) stream.write('\r\x1b[K');
      shown = false;
    },
  };
}
