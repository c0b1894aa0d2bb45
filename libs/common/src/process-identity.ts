// A pid alone cannot tell a live holder from a recycled pid; pid + kernel start time can.
import fs from 'node:fs';

export interface ProcessIdentity {
  pid: number;
  /** Start time in clock ticks since boot (field 22 of /proc/PID/stat); null where /proc is absent. */
  startTime: number | null;
}

/** Fields 3.. of /proc/PID/stat (field 3, the state, at index 0); null where /proc is absent. */
function statFields(pid: number): string[] | null {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

export function processStartTime(pid: number): number | null {
  const value = Number(statFields(pid)?.[19]);
  return Number.isFinite(value) ? value : null;
}

export function currentProcessIdentity(): ProcessIdentity {
  return { pid: process.pid, startTime: processStartTime(process.pid) };
}

/** True while the very process that `id` names is running. */
export function isProcessAlive(id: ProcessIdentity): boolean {
  try {
    process.kill(id.pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const fields = statFields(id.pid);
  // A zombie has ended; only its parent has not collected it yet.
  if (fields?.[0] === 'Z') return false;
  if (id.startTime === null) return true;
  const now = fields ? Number(fields[19]) : NaN;
  return !Number.isFinite(now) || now === id.startTime;
}
