// Connects a guest process to this terminal: stdin (with -i), stdout/stderr, raw mode and window
// size (with -t), and signals. Resolves with the exit code smolvm should exit with.
import type { ExecSession } from '@smolvm/agent-protocol';
import { exitCodeFor } from '@smolvm/runtime/exit-code';
import type { Readable, Writable } from 'node:stream';

export interface SessionOptions {
  interactive: boolean;
  tty: boolean;
  /** Called on a second termination signal: the guest ignored the first, so end the VM. */
  onTerminate?: () => Promise<unknown>;
}

/** The guest's terminal for -t: this one's size and TERM. */
export function ttyOptions(tty: boolean): { tty?: { rows: number; cols: number; term: string } } {
  return tty
    ? {
        tty: {
          rows: process.stdout.rows || 24,
          cols: process.stdout.columns || 80,
          term: process.env.TERM || 'xterm-256color',
        },
      }
    : {};
}

function drain(from: Readable, to: Writable): Promise<void> {
  return new Promise((resolve) => {
    from.pipe(to, { end: false });
    from.once('end', resolve);
    from.once('error', () => resolve());
    from.once('close', resolve);
  });
}

export async function runSession(session: ExecSession, options: SessionOptions): Promise<number> {
  const undo: Array<() => void> = [];
  if (options.interactive) {
    // process.stdin is made on first use (a stream, 3-5 ms): only a session that reads it does.
    const stdin = process.stdin;
    // In raw mode Ctrl-C is a byte the guest's terminal turns into SIGINT; otherwise it is our
    // signal, forwarded to the guest process. A second one ends the VM.
    if (options.tty && stdin.isTTY === true) {
      stdin.setRawMode(true);
      undo.push(() => stdin.setRawMode(false));
    }
    stdin.pipe(session.stdin);
    undo.push(() => {
      stdin.unpipe(session.stdin);
      stdin.destroy();
    });
  }
  if (options.tty && process.stdout.isTTY) {
    const onResize = () => void session.resize(process.stdout.rows, process.stdout.columns).catch(() => undefined);
    process.stdout.on('resize', onResize);
    undo.push(() => process.stdout.off('resize', onResize));
  }
  const received = new Map<NodeJS.Signals, number>();
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      const count = (received.get(signal) ?? 0) + 1;
      received.set(signal, count);
      if (count === 1) void session.signal(signal).catch(() => undefined);
      else void options.onTerminate?.();
    };
    process.on(signal, onSignal);
    undo.push(() => process.off(signal, onSignal));
  }
  try {
    const output = Promise.all([drain(session.stdout, process.stdout), drain(session.stderr, process.stderr)]);
    const status = await session.exit;
    await output;
    return exitCodeFor(status);
  } finally {
    for (const step of undo.reverse()) step();
  }
}
