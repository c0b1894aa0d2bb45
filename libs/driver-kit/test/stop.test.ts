// Stop escalation on a real process: each step is taken only when the one before did not end it.
import { spawn } from 'node:child_process';
import { escalateStop } from '../src';

/** A node child that ignores SIGTERM when asked to, and reports which signal ended it. */
function child(ignoreTerm: boolean) {
  const proc = spawn(
    process.execPath,
    [
      '-e',
      `${ignoreTerm ? "process.on('SIGTERM', () => undefined);" : ''} setInterval(() => undefined, 1000); process.stdout.write('up\\n');`,
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const up = new Promise((resolve) => proc.stdout.once('data', resolve));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => proc.once('exit', (_code, signal) => resolve(signal)));
  return { proc, up, exited, steps: { exited, signal: (s: 'SIGTERM' | 'SIGKILL') => void proc.kill(s) } };
}

describe('escalateStop', () => {
  it('quit first: a process that quits cleanly gets no signal', async () => {
    const c = child(false);
    await c.up;
    const signals: string[] = [];
    await escalateStop(
      { ...c.steps, quit: async () => void c.proc.kill('SIGINT'), signal: (s) => signals.push(s) },
      { quitGraceMs: 5_000 },
    );
    expect(await c.exited).toBe('SIGINT');
    expect(signals).toEqual([]);
  });

  it('without a quit, SIGTERM; one that ignores it gets SIGKILL after the grace', async () => {
    const polite = child(false);
    await polite.up;
    await escalateStop(polite.steps, { termGraceMs: 5_000 });
    expect(await polite.exited).toBe('SIGTERM');

    const stubborn = child(true);
    await stubborn.up;
    await escalateStop({ ...stubborn.steps, quit: async () => undefined }, { quitGraceMs: 50, termGraceMs: 200 });
    expect(await stubborn.exited).toBe('SIGKILL');
  });

  it('a process that ends by itself within timeoutMs is not touched', async () => {
    const c = child(false);
    await c.up;
    const signals: string[] = [];
    setTimeout(() => c.proc.kill('SIGUSR2'), 100);
    await escalateStop({ exited: c.exited, signal: (s) => signals.push(s) }, { timeoutMs: 10_000 });
    expect(await c.exited).toBe('SIGUSR2');
    expect(signals).toEqual([]);
  });
});
