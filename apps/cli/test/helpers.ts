import { spawnSync } from 'node:child_process';
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
