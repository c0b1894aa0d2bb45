// The end of a console log, for error messages. Bounded read: a guest can write gigabytes.
import fs from 'node:fs';

/**
 * The last `maxLines` lines of `file` (at most the last `maxBytes`); [] if it does not exist.
 * `file` may be an open descriptor (of a log already unlinked): it is read, not closed.
 */
export function readLogTail(file: string | number, maxLines = 20, maxBytes = 16 * 1024): string[] {
  let fd: number;
  try {
    fd = typeof file === 'number' ? file : fs.openSync(file, 'r');
  } catch {
    return [];
  }
  try {
    const size = fs.fstatSync(fd).size;
    const length = Math.min(size, maxBytes);
    const buf = Buffer.alloc(length);
    fs.readSync(fd, buf, 0, length, size - length);
    // Consoles emit CRLF and the odd control character: keep lines printable.
    let lines = buf.toString('utf8').replace(/\r/g, '').split('\n');
    if (length < size) lines = lines.slice(1); // first line is probably cut
    while (lines.length && lines[lines.length - 1] === '') lines.pop();
    // eslint-disable-next-line no-control-regex
    return lines.slice(-maxLines).map((l) => l.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, ''));
  } catch {
    return [];
  } finally {
    if (typeof file !== 'number') fs.closeSync(fd);
  }
}
