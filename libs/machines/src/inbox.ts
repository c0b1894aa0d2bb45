// The upload inbox: a host directory of the machine shared read-only with its guest. The
// supervisor writes an upload here (a local socket into a local file: fast), the agent copies it
// into place with the usual staging + fsync + rename, and the staged file goes. The guest can read
// the inbox but never write to it, so it cannot make the host store anything.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AgentRequestError } from '@smolvm/agent-protocol';

/**
 * Empties (or creates) the inbox: leftovers of a supervisor that was killed mid-upload. A private
 * directory of ours is emptied in place: an early-started QEMU may already share it (it holds the
 * directory itself, so a new one would never reach the guest). Anything else is replaced.
 */
export function resetInbox(dir: string): void {
  const st = fs.lstatSync(dir, { throwIfNoEntry: false });
  if (st?.isDirectory() && st.uid === process.getuid?.() && (st.mode & 0o777) === 0o700) {
    for (const name of fs.readdirSync(dir)) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
    return;
  }
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { mode: 0o700 });
}

/**
 * Writes `data` into a fresh inbox file: exactly `size` bytes (a file), or at most `maxBytes` (a
 * directory's tar, whose length is not known up front). Anything else leaves nothing.
 */
export async function stageUpload(
  dir: string,
  data: Readable,
  limit: { size: number } | { maxBytes: number },
): Promise<{ name: string; bytes: number; remove(): void }> {
  const size = 'size' in limit ? limit.size : limit.maxBytes;
  const name = `${crypto.randomBytes(12).toString('hex')}.upload`;
  const file = path.join(dir, name);
  const remove = () => fs.rmSync(file, { force: true });
  const fd = fs.openSync(
    file,
    fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW,
    0o600,
  );
  let written = 0;
  try {
    await pipeline(
      data,
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          written += chunk.length;
          if (written > size) {
            return cb(
              'size' in limit
                ? new AgentRequestError('putFile', 'bad-request', `more than the announced ${size} bytes arrived`)
                : new AgentRequestError(
                    'putTree',
                    'too-large',
                    `the directory is larger than the byte cap of ${size} bytes`,
                  ),
            );
          }
          try {
            let off = 0;
            while (off < chunk.length) off += fs.writeSync(fd, chunk, off, chunk.length - off);
            cb();
          } catch (err) {
            cb(new AgentRequestError('putFile', 'io-error', `staging the upload failed: ${(err as Error).message}`));
          }
        },
      }),
    );
    if ('size' in limit && written !== size)
      throw new AgentRequestError(
        'putFile',
        'io-error',
        `the transfer ended after ${written} of ${size} bytes; the destination is unchanged`,
      );
  } catch (err) {
    remove();
    throw err;
  } finally {
    fs.closeSync(fd);
  }
  return { name, bytes: written, remove };
}
