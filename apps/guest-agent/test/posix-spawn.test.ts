// exec through posix_spawn (src/posix-spawn.ts), on the host: what the child gets (pipes, cwd,
// env, default signals, no stray descriptors) and what the agent learns (exit codes, signals,
// errors), with nothing left open. The protocol-level exec tests (exec.test.ts) run through it
// too whenever no user switch is asked for.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import type net from 'node:net';
import { decodeStatus, posixSpawnAvailable, spawnPiped } from '../src/posix-spawn';

const collect = (s: net.Socket) =>
  new Promise<string>((resolve) => {
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.once('end', () => resolve(text));
  });
const openFds = () => fs.readdirSync('/proc/self/fd').length;
const env = { PATH: '/usr/local/bin:/usr/bin:/bin', GREETING: 'hello there' };

beforeAll(() => expect(posixSpawnAvailable()).toBe(true));

it('runs the program with its argv, cwd and environment; stdout and stderr apart; the exit code', async () => {
  const p = spawnPiped(
    { file: '/bin/sh', argv: ['sh', '-c', 'echo "$0 $GREETING"; pwd; echo oops >&2; exit 3'], env, cwd: '/tmp' },
    false,
  );
  const [out, err] = await Promise.all([collect(p.stdout), collect(p.stderr)]);
  expect(out).toBe('sh hello there\n/tmp\n');
  expect(err).toBe('oops\n');
  await expect(p.exited).resolves.toEqual({ code: 3, signal: null });
  expect(p.stdin).toBeNull();
});

it('stdin is a pipe when asked for, /dev/null otherwise', async () => {
  const cat = spawnPiped({ file: '/bin/cat', argv: ['cat'], env, cwd: '/' }, true);
  const out = collect(cat.stdout);
  cat.stdin?.end('through the pipe\n');
  expect(await out).toBe('through the pipe\n');
  await expect(cat.exited).resolves.toEqual({ code: 0, signal: null });
  const wc = spawnPiped({ file: '/usr/bin/wc', argv: ['wc', '-c'], env, cwd: '/' }, false);
  expect((await collect(wc.stdout)).trim()).toBe('0');
  await wc.exited;
});

it('the child starts with default signal handling and no blocked signals (Node ignores SIGPIPE), and none of our descriptors', async () => {
  const keep = fs.openSync(__filename, 'r');
  try {
    const p = spawnPiped(
      {
        file: '/bin/sh',
        argv: ['sh', '-c', 'grep -E "^Sig(Ign|Blk)" /proc/self/status; ls /proc/self/fd'],
        env,
        cwd: '/',
      },
      false,
    );
    const lines = (await collect(p.stdout)).trim().split('\n');
    await p.exited;
    // grep's own status: nothing ignored, nothing blocked.
    expect(lines.slice(0, 2)).toEqual(['SigBlk:\t0000000000000000', 'SigIgn:\t0000000000000000']);
    // ls sees what it would see started by Node's spawn (its stdio, the directory it lists, and
    // whatever this test process inherited without close-on-exec): not `keep`, not our pipes.
    const fds = lines
      .slice(2)
      .map(Number)
      .sort((a, b) => a - b);
    expect(fds).not.toContain(keep);
    const viaNode = spawnSync('/bin/sh', ['-c', 'ls /proc/self/fd'], {
      cwd: '/',
      env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(fds).toEqual(
      viaNode.stdout
        .trim()
        .split('\n')
        .map(Number)
        .sort((a, b) => a - b),
    );
  } finally {
    fs.closeSync(keep);
  }
});

it('delivers signals until the process is reaped, and reports death by signal', async () => {
  const p = spawnPiped({ file: '/bin/sleep', argv: ['sleep', '30'], env, cwd: '/' }, false);
  p.kill('SIGTERM');
  await expect(p.exited).resolves.toEqual({ code: null, signal: 'SIGTERM' });
  expect(() => p.kill('SIGKILL')).not.toThrow();
  const self = spawnPiped({ file: '/bin/sh', argv: ['sh', '-c', 'kill -KILL $$'], env, cwd: '/' }, false);
  await expect(self.exited).resolves.toEqual({ code: null, signal: 'SIGKILL' });
});

it('notices an exit while a background child still holds the output pipe', async () => {
  const p = spawnPiped({ file: '/bin/sh', argv: ['sh', '-c', 'sleep 2 & exit 5'], env, cwd: '/' }, false);
  const t0 = Date.now();
  await expect(p.exited).resolves.toEqual({ code: 5, signal: null });
  expect(Date.now() - t0).toBeLessThan(1500);
  p.stdout.destroy();
  p.stderr.destroy();
});

it('a program that cannot run is an error like Node spawn, and leaves no descriptor open', () => {
  const before = openFds();
  expect(() => spawnPiped({ file: '/no/such/program', argv: ['x'], env, cwd: '/' }, true)).toThrow(
    expect.objectContaining({ code: 'ENOENT' }),
  );
  expect(() => spawnPiped({ file: '/bin/true', argv: ['true'], env, cwd: '/no/such/dir' }, false)).toThrow(
    expect.objectContaining({ code: 'ENOENT' }),
  );
  expect(openFds()).toBe(before);
});

it('decodes wait statuses', () => {
  expect(decodeStatus(0)).toEqual({ code: 0, signal: null });
  expect(decodeStatus(7 << 8)).toEqual({ code: 7, signal: null });
  expect(decodeStatus(9)).toEqual({ code: null, signal: 'SIGKILL' });
  expect(decodeStatus(15 | 0x80)).toEqual({ code: null, signal: 'SIGTERM' });
});
