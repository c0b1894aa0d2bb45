// A process's stdio, wired to the FIFOs containerd (ctr, the CRI plugin) made for it. containerd
// holds the read ends of stdout/stderr and the write end of stdin; opening blocks until the other
// end is there, so it runs on libuv's thread pool (fs.promises), never on the event loop.
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
}

export function wireIo(session: { stdin: Writable; stdout: Readable; stderr: Readable }, io: ProcessIo): Wiring {
  const outputs = [copyOut(session.stdout, io.stdout)];
  if (!io.terminal) outputs.push(copyOut(session.stderr, io.stderr));
  else session.stderr.resume();
  let closeStdin = () => undefined as void;
  if (io.stdin) {
    let opened = false;
    let closed = false;
    void fs.promises.open(io.stdin, fs.constants.O_RDONLY).then(
      (handle) => {
        opened = true;
        if (closed) return void handle.close().then(() => session.stdin.end());
        const input = handle.createReadStream();
        input.on('error', () => session.stdin.end());
        input.pipe(session.stdin);
      },
      () => session.stdin.end(),
    );
    // containerd closed its end: an open stream sees end-of-file after the bytes already written;
    // one not yet open is ended as soon as the open returns.
    closeStdin = () => {
      closed = true;
      if (!opened) session.stdin.end();
    };
  } else {
    session.stdin.end();
  }
  return { outputDone: Promise.all(outputs).then(() => undefined), closeStdin };
}

async function copyOut(from: Readable, fifo: string): Promise<void> {
  if (!fifo) {
    from.resume();
    return;
  }
  let to: fs.WriteStream;
  try {
    to = (await fs.promises.open(fifo, fs.constants.O_WRONLY)).createWriteStream();
  } catch {
    from.resume();
    return;
  }
  to.on('error', () => from.resume());
  from.pipe(to);
  await finished(to).catch(() => undefined);
}
