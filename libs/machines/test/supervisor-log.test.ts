// supervisor.log while the machine runs: whatever the guest makes the supervisor write, the log
// and its one rotated predecessor stay under their bound, and the newest lines are kept.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RateLimitedLines, SupervisorLog } from '../src/supervisor-log';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-suplog-'));
});
afterEach(() => {
  jest.useRealTimers();
  fs.rmSync(dir, { recursive: true, force: true });
});

it('rotates in place through the descriptor it writes to, keeping at most two bounded files', () => {
  const file = path.join(dir, 'supervisor.log');
  const fd = fs.openSync(file, 'a');
  try {
    const log = new SupervisorLog(fd, file, 64 * 1024);
    for (let i = 0; i < 20_000; i++) log.line(`network: denied tcp 192.0.2.1:${i} (not allowed)`);
    // Someone else writing to the same descriptor (Node's own warnings on stderr) is counted too.
    fs.writeSync(fd, 'x'.repeat(70 * 1024));
    log.line('the last line');
    expect(fs.statSync(file).size).toBeLessThanOrEqual(64 * 1024);
    expect(fs.statSync(`${file}.1`).size).toBeLessThanOrEqual(64 * 1024 + 70 * 1024);
    expect(fs.readFileSync(file, 'utf8')).toMatch(/the last line\n$/);
    expect(fs.readdirSync(dir).sort()).toEqual(['supervisor.log', 'supervisor.log.1']);
  } finally {
    fs.closeSync(fd);
  }
});

it('does not rotate a descriptor that is not the named file', () => {
  const file = path.join(dir, 'supervisor.log');
  fs.writeFileSync(file, '');
  const other = path.join(dir, 'elsewhere.log');
  const fd = fs.openSync(other, 'a');
  try {
    const log = new SupervisorLog(fd, file, 1024);
    for (let i = 0; i < 100; i++) log.line('a line of some length');
    expect(fs.statSync(other).size).toBeGreaterThan(1024);
    expect(fs.existsSync(`${file}.1`)).toBe(false);
  } finally {
    fs.closeSync(fd);
  }
});

it('writes at most N lines per window and then how many it left out', () => {
  jest.useFakeTimers();
  const lines: string[] = [];
  const limited = new RateLimitedLines(
    (l) => lines.push(l),
    (n, s) => `${n} more in ${s} s`,
    3,
    10_000,
  );
  for (let i = 0; i < 1000; i++) limited.line(`denied ${i}`);
  expect(lines).toEqual(['denied 0', 'denied 1', 'denied 2']);
  jest.advanceTimersByTime(10_000);
  expect(lines).toEqual(['denied 0', 'denied 1', 'denied 2', '997 more in 10 s']);
  limited.line('denied later');
  expect(lines[lines.length - 1]).toBe('denied later');
});
