// exec without a terminal: stdin, stdout and stderr are three pipes, each its own stream.
import type { ChildProcess } from 'node:child_process';
import type { ExecIo, ExecProcess, ExecRequest, ExitStatus } from '@smolvm/agent-protocol';
import { identity, signalNumber, spawnError, type PreparedCommand } from './command';
import { childProcess } from './builtins';
import { forwardOutput } from './forward';

export async function execWithPipes(req: ExecRequest, cmd: PreparedCommand, io: ExecIo, lingerMs?: number): Promise<ExecProcess> {
  const child = childProcess().spawn(cmd.file, cmd.argv.slice(1), {
    argv0: cmd.argv[0],
    cwd: cmd.cwd,
    env: cmd.env,
    ...identity(cmd.creds),
    stdio: [req.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  await started(child, cmd.argv[0]);
  const out = forwardOutput(child.stdout as NonNullable<ChildProcess['stdout']>, io.stdout, lingerMs);
  const err = forwardOutput(child.stderr as NonNullable<ChildProcess['stderr']>, io.stderr, lingerMs);
  if (io.stdin && child.stdin) {
    const stdin = io.stdin;
    // The process may exit or close stdin without reading it all: drop the rest, quietly.
    child.stdin.on('error', () => stdin.unpipe());
    stdin.pipe(child.stdin);
  }
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => {
      out.processExited();
      err.processExited();
      io.stdin?.destroy();
      resolve({ code: signal ? null : (code ?? 0), signal: signal ?? null });
    });
  });
  return {
    pid: child.pid as number,
    exited,
    signal(name) {
      signalNumber(name);
      if (child.exitCode === null && child.signalCode === null) child.kill(name as NodeJS.Signals);
    },
    resize() {
      // No terminal, nothing to resize.
    },
  };
}

export function started(child: ChildProcess, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    // Errors after the spawn (a failed kill) must not become uncaught 'error' events.
    child.on('error', () => undefined);
    child.once('spawn', resolve);
    child.once('error', (e: NodeJS.ErrnoException) => reject(spawnError(e, name)));
  });
}
