import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';

export const CLI = path.join(__dirname, '..', 'dist', 'smolvm.js');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI (the test target depends on build) as a user would. */
export function smolvm(args: string[], env: NodeJS.ProcessEnv = {}, input?: string, timeoutMs = 60_000): CliResult {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    input,
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The same without blocking this process (tests that serve something the CLI talks to, or kill it). */
export function startSmolvm(args: string[], env: NodeJS.ProcessEnv = {}): { done: Promise<CliResult>; pid: number } {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr })));
  return { done, pid: child.pid as number };
}

export function smolvmAsync(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return startSmolvm(args, env).done;
}
