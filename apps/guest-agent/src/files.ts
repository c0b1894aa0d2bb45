// `machine cp` on the guest side. Uploads land in a staging file beside the destination (same
// filesystem, so the final rename is atomic), are synced, then renamed over it; anything short of
// a complete, synced file is removed and the old destination stays as it was.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import {
  AgentRequestError,
  type FileInfo,
  type GetFileRequest,
  type InstallFileOptions,
  type OutboundStream,
  type PutFileOptions,
  type PutFileResult,
} from '@smolvm/agent-protocol';

function fileError(op: string, err: unknown, what: string): AgentRequestError {
  const e = err as NodeJS.ErrnoException;
  const code =
    e.code === 'ENOENT' || e.code === 'ENOTDIR'
      ? 'not-found'
      : e.code === 'EACCES' || e.code === 'EPERM'
        ? 'permission-denied'
        : 'io-error';
  return new AgentRequestError(op, code, `${what}: ${e.code ?? ''} ${e.message}`.replace(/\s+/g, ' '));
}

/** Counts bytes into an fd, failing as soon as the stream runs past the announced size. */
function sizedFileSink(fd: number, size: number, dest: string): Writable & { written: number } {
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      sink.written += chunk.length;
      if (sink.written > size)
        return cb(
          new AgentRequestError('putFile', 'bad-request', `more than the announced ${size} bytes arrived for ${dest}`),
        );
      let off = 0;
      try {
        while (off < chunk.length) off += fs.writeSync(fd, chunk, off, chunk.length - off);
        cb();
      } catch (err) {
        cb(fileError('putFile', err, `writing ${dest}`));
      }
    },
  }) as Writable & { written: number };
  sink.written = 0;
  return sink;
}

export async function putFile(req: PutFileOptions, data: Readable): Promise<PutFileResult> {
  let dest = req.path;
  const st = fs.statSync(dest, { throwIfNoEntry: false });
  if (st?.isDirectory()) {
    if (!req.name)
      throw new AgentRequestError('putFile', 'bad-request', `${dest} is a directory; name the file to create in it`);
    dest = path.join(dest, req.name);
    if (fs.statSync(dest, { throwIfNoEntry: false })?.isDirectory())
      throw new AgentRequestError('putFile', 'bad-request', `${dest} is a directory`);
  }
  const dir = path.dirname(dest);
  const staging = path.join(
    dir,
    `.${path.basename(dest).slice(0, 200)}.smolvm-${crypto.randomBytes(6).toString('hex')}.part`,
  );
  let fd: number;
  try {
    fd = fs.openSync(
      staging,
      fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW,
      0o600,
    );
  } catch (err) {
    throw fileError('putFile', err, `cannot create a file in ${dir}`);
  }
  let renamed = false;
  try {
    const sink = sizedFileSink(fd, req.size, dest);
    await pipeline(data, sink);
    if (sink.written !== req.size) {
      throw new AgentRequestError(
        'putFile',
        'io-error',
        `the transfer ended after ${sink.written} of ${req.size} bytes; ${dest} is unchanged`,
      );
    }
    fs.fchmodSync(fd, req.mode & 0o777);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = -1;
    fs.renameSync(staging, dest);
    renamed = true;
    const dirFd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(dirFd);
    } finally {
      fs.closeSync(dirFd);
    }
    return { path: dest, bytes: req.size };
  } catch (err) {
    if (err instanceof AgentRequestError) throw err;
    throw fileError('putFile', err, `writing ${dest}`);
  } finally {
    if (fd >= 0) fs.closeSync(fd);
    if (!renamed) fs.rmSync(staging, { force: true });
  }
}

/** putFile from a file in the guest (the supervisor's read-only upload share). */
export async function installFile(req: InstallFileOptions): Promise<PutFileResult> {
  let fd: number;
  try {
    fd = fs.openSync(req.source, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    throw fileError('installFile', err, `cannot open ${req.source}`);
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile() || st.size !== req.size) {
    fs.closeSync(fd);
    throw new AgentRequestError(
      'installFile',
      'bad-request',
      `${req.source} is not a regular file of ${req.size} bytes`,
    );
  }
  const source = fs.createReadStream('', { fd, highWaterMark: 1024 * 1024 });
  try {
    return await putFile(req, source);
  } finally {
    // Refused before it was read (no such directory...): the descriptor would stay open, and an
    // open file in the upload share keeps it from being unmounted (a machine snapshot needs that).
    source.destroy();
  }
}

export async function getFile(req: GetFileRequest, out: OutboundStream): Promise<FileInfo> {
  let fd: number;
  try {
    fd = fs.openSync(req.path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    throw fileError('getFile', err, `cannot open ${req.path}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw new AgentRequestError('getFile', 'is-a-directory', `${req.path} is a directory`);
    if (!st.isFile()) throw new AgentRequestError('getFile', 'bad-request', `${req.path} is not a regular file`);
    if (st.size >= req.maxBytes) {
      throw new AgentRequestError(
        'getFile',
        'too-large',
        `${req.path} is ${st.size} bytes, exceeding the byte cap of ${req.maxBytes} bytes`,
      );
    }
    const size = st.size;
    // Exactly `size` bytes go out even if the file changes meanwhile: the host checks the count.
    if (size === 0) {
      fs.closeSync(fd);
      out.end();
    } else {
      const stream = fs.createReadStream('', { fd, start: 0, end: size - 1, highWaterMark: 1024 * 1024 });
      void pipeline(stream, out).catch(() => out.destroy());
    }
    return { size, mode: st.mode & 0o7777 };
  } catch (err) {
    fs.closeSync(fd);
    if (err instanceof AgentRequestError) throw err;
    throw fileError('getFile', err, `reading ${req.path}`);
  }
}
