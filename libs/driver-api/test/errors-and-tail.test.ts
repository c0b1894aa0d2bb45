import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { formatError } from '@smolvm/common';
import { VmStartError, readLogTail } from '../src';

describe('VmStartError', () => {
  it('one line: summary, the hypervisor line, the last console line, and where the log is', () => {
    const err = new VmStartError('QEMU exited with status 1', {
      hypervisorOutput: ["-chardev socket,id=agent,path=/r/agent.sock: Failed to connect to '/r/agent.sock'", ''],
      consoleTail: ['[0.1] booting', 'Kernel panic - not syncing: VFS'],
      consoleLog: '/r/console.log',
    });
    expect(formatError(err)).toBe(
      "error: VM failed to start: QEMU exited with status 1: -chardev socket,id=agent,path=/r/agent.sock: Failed to connect to '/r/agent.sock' (console: Kernel panic - not syncing: VFS); see the console log /r/console.log",
    );
    expect(err.describe()).toContain('console tail:\n  [0.1] booting\n  Kernel panic');
  });
});

describe('readLogTail', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-tail-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('returns the last lines, without CRs or control characters', () => {
    const file = path.join(dir, 'a.log');
    fs.writeFileSync(file, 'one\r\ntwo\r\n\x1b[0mthree\n\n');
    expect(readLogTail(file, 2)).toEqual(['two', '[0mthree']);
  });

  it('reads only the end of a huge log and drops the cut first line', () => {
    const file = path.join(dir, 'big.log');
    fs.writeFileSync(file, 'x'.repeat(100_000) + '\nlast-but-one\nlast\n');
    expect(readLogTail(file, 5, 1024)).toEqual(['last-but-one', 'last']);
  });

  it('reads an unlinked log through a descriptor, and leaves the descriptor open', () => {
    const file = path.join(dir, 'unlinked.log');
    fs.writeFileSync(file, 'booting\nready\n');
    const fd = fs.openSync(file, 'r+');
    try {
      fs.unlinkSync(file);
      expect(readLogTail(fd, 1)).toEqual(['ready']);
      fs.writeSync(fd, 'more\n', fs.fstatSync(fd).size);
      expect(readLogTail(fd, 2)).toEqual(['ready', 'more']);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('is empty for a missing file', () => {
    expect(readLogTail(path.join(dir, 'missing.log'))).toEqual([]);
  });
});
