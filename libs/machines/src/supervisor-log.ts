// supervisor.log: the supervisor's stdout and stderr, open for as long as the machine runs. The
// guest decides how much of it there is (init output, one line per denied packet), so its size is
// bounded while running, not only at the next start, and denial lines are rate-limited.
import fs from 'node:fs';

/** supervisor.log is rotated to supervisor.log.1 past this: at most twice this on disk. */
export const LOG_ROTATE_BYTES = 1024 * 1024;

/** Moves `log` aside to `log.1` when it has outgrown the bound (before a start reopens it). */
export function rotateLogFile(log: string, maxBytes = LOG_ROTATE_BYTES): void {
  try {
    if (fs.statSync(log).size > maxBytes) fs.renameSync(log, `${log}.1`);
  } catch {
    // No log yet.
  }
}

/**
 * Writes to `fd` (the supervisor's stdout: `file` opened for appending by `machine start`) and
 * rotates in place before a write would take it past `maxBytes`: the content is copied to
 * `file.1` and the file is truncated. The descriptor cannot be reopened (stderr shares it, and Node writes its own
 * warnings there), and appends land at the new end after a truncation.
 */
export class SupervisorLog {
  private readonly rotates: boolean;

  constructor(
    private readonly fd: number,
    private readonly file: string,
    private readonly maxBytes = LOG_ROTATE_BYTES,
  ) {
    const st = fs.fstatSync(fd);
    const named = fs.statSync(file, { throwIfNoEntry: false });
    // Only when the descriptor is that very file (a supervisor run by hand may log elsewhere).
    this.rotates = st.isFile() && named !== undefined && named.ino === st.ino && named.dev === st.dev;
  }

  write(data: string | Buffer): void {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    // The size is asked each time: Node's own warnings reach the same file through stderr.
    if (this.rotates && fs.fstatSync(this.fd).size + buf.length > this.maxBytes) {
      fs.copyFileSync(this.file, `${this.file}.1`);
      fs.ftruncateSync(this.fd, 0);
    }
    fs.writeSync(this.fd, buf);
  }

  line(message: string): void {
    this.write(`${new Date().toISOString()} ${message}\n`);
  }
}

/**
 * At most `perWindow` lines per `windowMs`; the rest are counted, and the count is written once
 * the window is over (on a timer that keeps no process alive).
 */
export class RateLimitedLines {
  private windowStart = -Infinity;
  private written = 0;
  private suppressed = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly write: (line: string) => void,
    private readonly summary: (suppressed: number, windowSeconds: number) => string,
    private readonly perWindow = 20,
    private readonly windowMs = 60_000,
  ) {}

  line(text: string): void {
    const now = Date.now();
    if (now - this.windowStart >= this.windowMs) {
      this.flush();
      this.windowStart = now;
      this.written = 0;
    }
    if (this.written < this.perWindow) {
      this.written++;
      this.write(text);
      return;
    }
    this.suppressed++;
    this.timer ??= setTimeout(() => this.flush(), this.windowStart + this.windowMs - now).unref();
  }

  /** Writes the count of lines left out, if any. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.suppressed === 0) return;
    const n = this.suppressed;
    this.suppressed = 0;
    this.write(this.summary(n, Math.round(this.windowMs / 1000)));
  }
}
