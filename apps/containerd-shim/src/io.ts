// A process's stdio, wired to the FIFOs containerd (ctr, the CRI plugin) made for it. containerd
// holds the read ends of stdout/stderr and the write end of stdin; opening blocks until the other
// end is there, so it runs on libuv's thread pool (fs.promises), never on the event loop. An open
// still blocked when it is no longer wanted is released by opening the other end ourselves: a
// thread stuck in open(2) would otherwise hold the process at exit.
import fs from 'node:fs';
import { finished } from 'node:stream/promises';
import type { Readable, Writable } from 'node:stream';

export interface ProcessIo {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

export interface Wiring {
  /** Settles when every output byte reached its FIFO (or the FIFO went away). */
  outputDone: Promise<void>;
  /** CloseIO: stdin ends once what was written so far has been passed on. */
  closeStdin(): void;
  /** Releases the opens that are still blocked (the process is gone, or the shim exits). */
  release(): void;
}

const pending = new Set<() => void>();

/** Releases every blocked FIFO open of this process (before it exits). */
export function releasePendingOpens(): void {
  for (const release of [...pending]) release();
}

function openFifo(file: string, flags: number): { handle: Promise<fs.promises.FileHandle>; release(): void } {
  let settled = false;
  const release = () => {
    if (settled) return;
    settled = true;
    pending.delete(release);
    const other =
      (flags & (fs.constants.O_WRONLY | fs.constants.O_RDWR)) === 0 ? fs.constants.O_WRONLY : fs.constants.O_RDONLY;
    try {
      fs.closeSync(fs.openSync(file, other | fs.constants.O_NONBLOCK));
    } catch {
      // Nobody waits on the other end (the open already completed or failed): nothing to release.
    }
  };
  const handle = fs.promises.open(file, flags).finally(() => {
    settled = true;
    pending.delete(release);
  });
  pending.add(release);
  return { handle, release };
}

export function wireIo(session: { stdin: Writable; stdout: Readable; stderr: Readable }, io: ProcessIo): Wiring {
  const releases: Array<() => void> = [];
  const outputs = [copyOut(session.stdout, io.stdout, releases)];
  if (!io.terminal) outputs.push(copyOut(session.stderr, io.stderr, releases));
  else session.stderr.resume();
  let closeStdin = () => undefined as void;
  if (io.stdin) {
    const input = openFifo(io.stdin, fs.constants.O_RDONLY);
    releases.push(input.release);
    input.handle.then(
      (handle) => {
        const stream = handle.createReadStream();
        stream.on('error', () => session.stdin.end());
        stream.pipe(session.stdin);
      },
      () => session.stdin.end(),
    );
    // containerd closed its end: an open stream sees end-of-file after the bytes already written;
    // an open still waiting for a writer is released and then sees end-of-file at once.
    closeStdin = input.release;
  } else {
    session.stdin.end();
  }
  return {
    outputDone: Promise.all(outputs).then(() => undefined),
    closeStdin,
    release: () => releases.forEach((r) => r()),
  };
}

async function copyOut(from: Readable, fifo: string, releases: Array<() => void>): Promise<void> {
  if (!fifo) {
    from.resume();
    return;
  }
  const output = openFifo(fifo, fs.constants.O_WRONLY);
  releases.push(output.release);
  let to: fs.WriteStream;
  try {
    to = (await output.handle).createWriteStream();
  } catch {
    from.resume();
    return;
  }
  to.on('error', () => from.resume());
  from.pipe(to);
  await finished(to).catch(() => undefined);
}
