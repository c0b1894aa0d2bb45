// Moves a process's output into a protocol stream and decides when that output is over.
// Normally that is end-of-file on the pipe (or EIO on a pty master once every slave is closed).
// But a background child can keep the pipe open long after the command exited (`cmd &` in a
// shell); then, once the command has exited, a pipe that stays quiet for `lingerMs` while the
// host is keeping up is considered finished, so the exit is not held hostage.
import type { Readable } from 'node:stream';
import type { OutboundStream } from '@smolvm/agent-protocol';

export const DEFAULT_LINGER_MS = 250;

export interface Forwarding {
  /** Resolves once `dest` has been ended. */
  readonly done: Promise<void>;
  /** The process exited: start watching for a quiet pipe. */
  processExited(): void;
}

export function forwardOutput(src: Readable, dest: OutboundStream, lingerMs = DEFAULT_LINGER_MS): Forwarding {
  let lastActivity = Date.now();
  let waitingForHost = false;
  let timer: NodeJS.Timeout | null = null;
  let finished = false;
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));

  const finish = () => {
    if (finished) return;
    finished = true;
    if (timer) clearInterval(timer);
    src.removeAllListeners('data');
    dest.end(() => resolveDone());
    // A closed destination completes its writes without sending: done must not wait on them.
    if (dest.peerClosed) resolveDone();
  };

  src.on('data', (chunk: Buffer) => {
    lastActivity = Date.now();
    if (!dest.write(chunk)) {
      waitingForHost = true;
      src.pause();
      dest.once('drain', () => {
        waitingForHost = false;
        lastActivity = Date.now();
        src.resume();
      });
    }
  });
  src.once('end', finish);
  // EIO is how a pty master reports that the last slave closed: the normal end of a tty session.
  src.once('error', finish);
  src.once('close', finish);

  return {
    done,
    processExited() {
      if (finished || timer) return;
      // The quiet period counts from the exit at the earliest: on a busy agent the exit can be
      // seen before output the process wrote just before it was read off the pipe.
      lastActivity = Math.max(lastActivity, Date.now());
      timer = setInterval(
        () => {
          if (waitingForHost) lastActivity = Date.now();
          else if (Date.now() - lastActivity >= lingerMs) {
            // Timers run before the loop polls for I/O: after a busy spell the quiet period can
            // be "over" with output still unread in the pipe. Decide after this round's poll.
            const seen = lastActivity;
            setImmediate(() => {
              if (finished || lastActivity !== seen) return;
              src.destroy();
              finish();
            });
          }
        },
        Math.max(10, Math.floor(lingerMs / 5)),
      );
      timer.unref();
    },
  };
}
