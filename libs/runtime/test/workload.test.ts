// The init loop shared by `machine run` and the supervisor, against a fake VM that runs each
// command as a scripted session.
import { PassThrough } from 'node:stream';
import { UsageError } from '@smolvm/common';
import type { ExecOptions, ExecSession } from '@smolvm/agent-protocol';
import { runInitCommands, workloadArgv } from '../src/workload';

function fakeVm(script: Record<string, { out?: string; err?: string; code: number | null; signal?: string }>) {
  const calls: ExecOptions[] = [];
  return {
    calls,
    async exec(options: ExecOptions): Promise<ExecSession> {
      calls.push(options);
      const step = script[options.argv[2]];
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      setImmediate(() => {
        stdout.end(step.out ?? '');
        stderr.end(step.err ?? '');
      });
      return {
        pid: 1,
        stdin: new PassThrough(),
        stdout,
        stderr,
        exit: Promise.resolve({ code: step.code, signal: step.signal ?? null }),
        resize: async () => undefined,
        signal: async () => undefined,
      };
    },
  };
}

it('runs the commands in order with the workload env, cwd and user, passing all output on', async () => {
  const vm = fakeVm({ 'echo a': { out: 'a\n', code: 0 }, 'echo b >&2': { err: 'b\n', code: 0 } });
  const seen: string[] = [];
  const commands: string[] = [];
  await runInitCommands(vm, ['echo a', 'echo b >&2'], {
    env: { K: 'v' },
    cwd: '/w',
    user: '1000',
    onOutput: (d, s) => seen.push(`${s}:${d}`),
    onCommand: (c) => commands.push(c),
    remedy: 'fix it',
  });
  expect(vm.calls.map((c) => [c.argv, c.env, c.cwd, c.user])).toEqual([
    [['/bin/sh', '-c', 'echo a'], { K: 'v' }, '/w', '1000'],
    [['/bin/sh', '-c', 'echo b >&2'], { K: 'v' }, '/w', '1000'],
  ]);
  expect(seen).toEqual(['stdout:a\n', 'stderr:b\n']);
  expect(commands).toEqual(['echo a', 'echo b >&2']);
});

it('stops at the first failure with one line naming the command, the remedy, and the last output as cause', async () => {
  const vm = fakeVm({ ok: { code: 0 }, bad: { out: 'x\n'.repeat(10) + 'last words\n', code: 3 }, never: { code: 0 } });
  const err = (await runInitCommands(vm, ['ok', 'bad', 'never'], {
    env: {},
    onOutput: () => undefined,
    remedy: 'fix the command',
  }).catch((e: unknown) => e)) as UsageError;
  expect(err).toBeInstanceOf(UsageError);
  expect(err.message).toBe('init command failed with exit code 3: bad');
  expect(err.remedy).toBe('fix the command');
  expect(String(err.cause).split('\n')).toEqual(['x', 'x', 'x', 'x', 'last words']);
  expect(vm.calls).toHaveLength(2);
  const killed = await runInitCommands(fakeVm({ k: { code: null, signal: 'SIGKILL' } }), ['k'], {
    env: {},
    onOutput: () => undefined,
    remedy: 'r',
  }).catch((e: Error) => e.message);
  expect(killed).toBe('init command failed with SIGKILL: k');
});

it('gives a bare VM without a command a shell, and an image without one nothing', () => {
  expect(workloadArgv([], false)).toEqual(['/bin/sh']);
  expect(workloadArgv([], true)).toEqual([]);
  expect(workloadArgv(['echo', 'x'], true)).toEqual(['echo', 'x']);
});
