// Byte progress for long transfers: a bar on a terminal (bytes, rate, ETA), nothing when stderr
// is piped or --quiet is given, so captured output stays clean.
import type { SingleBar } from 'cli-progress';

type CliProgress = typeof import('cli-progress');
/** cli-progress (and the readline it loads) only when a bar is drawn: not on every `machine run`. */
function loadCliProgress(): CliProgress {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('cli-progress') as CliProgress;
}

export interface ByteProgress {
  start(total: number, label: string): void;
  update(done: number, total?: number): void;
  stop(): void;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

const silent: ByteProgress = { start: () => undefined, update: () => undefined, stop: () => undefined };

export function byteProgress(options: { quiet: boolean; stream?: NodeJS.WriteStream }): ByteProgress {
  const stream = options.stream ?? process.stderr;
  if (options.quiet || !stream.isTTY) return silent;
  let bar: SingleBar | undefined;
  let started = 0;
  let last = 0;
  const rate = (done: number) => done / Math.max(0.001, (Date.now() - started) / 1000);
  const payload = (done: number) => ({ doneText: formatBytes(done), rateText: `${formatBytes(rate(done))}/s` });
  return {
    start(total, label) {
      started = Date.now();
      bar = new (loadCliProgress().SingleBar)({
        stream,
        format: `${label} {bar} {percentage}% | {doneText} / {totalText} | {rateText} | ETA {eta_formatted}`,
        barsize: 24,
        hideCursor: true,
        clearOnComplete: true,
        fps: 8,
      });
      bar.start(total, 0, { ...payload(0), totalText: formatBytes(total) });
    },
    update(done, total) {
      last = done;
      if (!bar) return;
      if (total !== undefined) bar.setTotal(total);
      bar.update(done, payload(done));
    },
    stop() {
      bar?.update(last, payload(last));
      bar?.stop();
      bar = undefined;
    },
  };
}
