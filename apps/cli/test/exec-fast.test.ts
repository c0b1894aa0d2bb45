// The fast exec path's parser (src/exec-fast.ts) against the CLI's own: what it takes, it must
// read exactly as yargs reads it through the real `machine exec` command; the rest it declines.
import { parseFastExec } from '../src/exec-fast';
import { main } from '../src/main';
import type { ExecArgs } from '../src/commands/machine/exec';
import { runExec } from '../src/commands/machine/exec.handler';

// The CLI's exec command imports its handler lazily; here it only records what it was given.
jest.mock('../src/commands/machine/exec.handler', () => ({ runExec: jest.fn(async () => 0) }));

/** The arguments the real exec handler gets for `smolvm ARGS`, through the CLI's own parser. */
async function viaCli(args: string[]): Promise<Partial<ExecArgs>> {
  const handler = runExec as jest.MockedFunction<typeof runExec>;
  handler.mockClear();
  expect(await main(args)).toBe(0);
  expect(handler).toHaveBeenCalledTimes(1);
  return pick(handler.mock.calls[0][0]);
}

function pick(a: ExecArgs): Partial<ExecArgs> {
  return {
    debug: a.debug,
    quiet: a.quiet,
    name: a.name,
    interactive: a.interactive,
    tty: a.tty,
    stream: a.stream,
    env: a.env,
    workdir: a.workdir,
    '--': (a['--'] ?? []).map(String),
  };
}

const taken: string[][] = [
  ['machine', 'exec', '--', 'true'],
  ['machine', 'exec', '--name', 'dev', '--', 'sh', '-c', 'echo $X'],
  ['machine', 'exec', '-n', 'dev', '--name=other', '--', 'true'],
  ['--debug', 'machine', 'exec', '--quiet', '-n', 'dev', '--', 'true'],
  ['machine', 'exec', '-it', '--name', 'dev', '--', '/bin/sh'],
  ['machine', 'exec', '-ti', '--', '/bin/sh'],
  ['machine', 'exec', '-i', '-t', '--interactive', '--tty', '--stream', '--', 'cat'],
  ['machine', 'exec', '-e', 'A=1', '--env', 'B=x=y', '--env=C', '-e', 'D=', '--', 'env'],
  ['machine', 'exec', '-w', '/tmp', '--workdir', '/workspace', '--workdir=/srv', '--', 'pwd'],
  // After --, everything is the command's, as written: flags, numbers, empty words.
  ['machine', 'exec', '--', 'printf', '%s %s %s\\n', '0x10', '1e3', '010', '', '--name', '-e', '--'],
  ['machine', 'exec', '--name', '12', '-e', 'N=0x10', '--', 'true'],
];

const declined: string[][] = [
  ['machine', 'exec', 'true'],
  ['machine', 'exec', '--help', '--', 'true'],
  ['machine', 'exec', '-h', '--', 'true'],
  ['--version', 'machine', 'exec', '--', 'true'],
  ['machine', 'exec', '--nam', 'dev', '--', 'true'],
  ['machine', 'exec', '--no-tty', '--', 'true'],
  ['machine', 'exec', '-itn', 'dev', '--', 'true'],
  ['machine', 'exec', '-e', 'A=1', 'B=2', '--', 'env'],
  ['machine', 'exec', '--name', '--', 'true'],
  ['machine', 'exec', '--name', '-x', '--', 'true'],
  ['machine', 'exec', '--name', '', '--', 'true'],
  ['machine', 'exec', '--name=', '--', 'true'],
  ['machine', 'exec', '--debug', 'true', '--', 'true'],
  ['machine', 'exec', 'extra', '--', 'true'],
  ['machine', 'run', '--', 'true'],
  ['exec', 'machine', '--', 'true'],
  ['machine', 'exec', '-e=A', '--', 'true'],
];

describe('the fast exec parser', () => {
  it.each(taken.map((a) => [a.join(' '), a]))('reads %s as the CLI does', async (_, args) => {
    const fast = parseFastExec(args as string[]);
    expect(fast).toBeDefined();
    expect(pick(fast as ExecArgs)).toEqual(await viaCli(args as string[]));
  });

  it.each(declined.map((a) => [a.join(' '), a]))('declines %s (the full CLI handles it)', (_, args) => {
    expect(parseFastExec(args as string[])).toBeUndefined();
  });
});
