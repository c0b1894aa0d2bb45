import os from 'node:os';
import type { ExitStatus } from '@smolvm/agent-protocol';

/** The shell convention: the process's exit code, or 128 + the signal number that killed it. */
export function exitCodeFor(status: ExitStatus): number {
  if (status.code !== null) return status.code;
  const signals = os.constants.signals as Record<string, number>;
  const number = status.signal ? signals[status.signal] : undefined;
  return 128 + (number ?? 0);
}
