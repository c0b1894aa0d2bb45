// A console log a guest floods: trimming frees all but its tail, on the file systems run
// directories live on (tmpfs, ext4), while the writer keeps writing at its own offset.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CONSOLE_LOG_KEEP_BYTES, CONSOLE_LOG_MAX_BYTES, readLogTail, trimLog } from '../src';

const roots = [os.tmpdir(), '/dev/shm'].filter((d) => fs.existsSync(d));

describe.each(roots)('on %s', (root) => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(root, 'smolvm-console-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('frees all but the tail of a flooded log, which stays readable and writable', () => {
    const file = path.join(dir, 'console.log');
    // Like QEMU's file chardev: its own descriptor, no O_APPEND; the host holds another (writable:
    // punching a hole needs that).
    const writer = fs.openSync(file, 'w');
    const reader = fs.openSync(file, 'r+');
    try {
      const line = Buffer.from(`${'x'.repeat(70)}\n`);
      let written = 0;
      for (; written < 16 * CONSOLE_LOG_MAX_BYTES; written += line.length) fs.writeSync(writer, line);
      fs.writeSync(writer, 'Kernel panic - not syncing: the last words\n');
      fs.unlinkSync(file);
      expect(trimLog(reader)).toBe(true);
      const st = fs.fstatSync(reader);
      expect(st.blocks * 512).toBeLessThanOrEqual(CONSOLE_LOG_KEEP_BYTES + 8192);
      expect(st.size).toBeGreaterThan(written);
      expect(readLogTail(`/proc/self/fd/${reader}`, 1)).toEqual(['Kernel panic - not syncing: the last words']);
      fs.writeSync(writer, 'after the trim\n');
      expect(readLogTail(`/proc/self/fd/${reader}`, 2)).toEqual([
        'Kernel panic - not syncing: the last words',
        'after the trim',
      ]);
    } finally {
      fs.closeSync(writer);
      fs.closeSync(reader);
    }
  });

  it('leaves a log under the bound alone', () => {
    const file = path.join(dir, 'console.log');
    fs.writeFileSync(file, 'boot messages\n'.repeat(1000));
    const fd = fs.openSync(file, 'r');
    try {
      const before = fs.fstatSync(fd).blocks;
      expect(trimLog(fd)).toBe(true);
      expect(fs.fstatSync(fd).blocks).toBe(before);
      expect(fs.readFileSync(file, 'utf8')).toBe('boot messages\n'.repeat(1000));
    } finally {
      fs.closeSync(fd);
    }
  });
});
