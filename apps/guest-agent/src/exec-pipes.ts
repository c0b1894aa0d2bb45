// exec without a terminal: stdin, stdout and stderr are three pipes, each its own stream.
import type { ChildProcess } from 'node:child_process';
import type net from 'node:net';
import type { ExecIo, ExecProcess, ExecRequest, ExitStatus } from '@smolvm/agent-protocol';
import { identity, signalNumber, spawnFailed, type PreparedCommand } from './command';
import { childProcess } from './builtins';
import { forwardOutput } from './forward';
import { posixSpawnAvailable, spawnPiped, type SpawnedProcess } from './posix-spawn';

/** posix_spawn where it can do what is asked (see posix-spawn.ts), Node's spawn otherwise. */
export async function execWithPipes(
  req: ExecRequest,
  cmd: PreparedCommand,
  io: ExecIo,
  lingerMs?: number,
): Promise<ExecProcess> {
  const posix = Object.keys(identity(cmd.creds)).length === 0 && posixSpawnAvailable();
  let child: SpawnedProcess;
  try {
    child = posix ? spawnPiped(cmd, !!req.stdin) : await nodeSpawn(req, cmd);
  } catch (e) {
    throw spawnFailed(e, cmd.argv[0]);
  }
  const out = forwardOutput(child.stdout, io.stdout, lingerMs);
  const err = forwardOutput(child.stderr, io.stderr, lingerMs);
  if (io.stdin && child.stdin) {
    const stdin = io.stdin;
    // The process may exit or close stdin without reading it all: drop the rest, quietly.
    child.stdin.on('error', () => stdin.unpipe());
    stdin.pipe(child.stdin);
  }
  const exited = child.exited.then((status) => {
    out.processExited();
    err.processExited();
    io.stdin?.destroy();
    return status;
  });
  return {
    pid: child.pid,
    exited,
    signal(name) {
      signalNumber(name);
      // Both kinds send nothing once the process is gone (its pid may be another's by then).
      child.kill(name as NodeJS.Signals);
    },
    resize() {
      // No terminal, nothing to resize.
    },
  };
}

/** Node's spawn (libuv: fork + exec), shaped like spawnPiped's result. */
async function nodeSpawn(req: ExecRequest, cmd: PreparedCommand): Promise<SpawnedProcess> {
  const child = childProcess().spawn(cmd.file, cmd.argv.slice(1), {
    argv0: cmd.argv[0],
    cwd: cmd.cwd,
    env: cmd.env,
    ...identity(cmd.creds),
    stdio: [req.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  await started(child);
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code: signal ? null : (code ?? 0), signal: signal ?? null }));
  });
  return {
    pid: child.pid as number,
    stdin: child.stdin as net.Socket | null,
    stdout: child.stdout as net.Socket,
    stderr: child.stderr as net.Socket,
    exited,
    kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

/** Resolves once the process runs; rejects with Node's spawn error (ENOENT, EACCES...). */
export function started(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    // Errors after the spawn (a failed kill) must not become uncaught 'error' events.
    child.on('error', () => undefined);
    child.once('spawn', resolve);
    child.once('error', reject);
  });
}
