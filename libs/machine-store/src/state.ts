// The lifecycle state shown by `machine status` / `machine ls`, derived from the record alone
// plus a liveness check, so it needs no daemon and can never disagree with the files.
import { isProcessAlive, type ProcessIdentity } from '@smolvm/common';
import type { MachineRecord } from './record';

export type MachineState = 'created' | 'stopped' | 'running' | 'unreachable';

export interface StateProbe {
  /** Liveness of the supervisor; defaults to isProcessAlive (pid + start time). */
  isAlive?: (supervisor: ProcessIdentity) => boolean;
  /** Result of pinging the guest agent through the supervisor; undefined when not checked. */
  agentReachable?: boolean;
}

/**
 * created: never started. stopped: started before, no live supervisor now (clean stop or crash).
 * running: live supervisor. unreachable: live supervisor whose agent did not answer.
 */
export function machineState(record: Pick<MachineRecord, 'runtime'>, probe: StateProbe = {}): MachineState {
  const runtime = record.runtime;
  if (!runtime) return 'created';
  // A clean stop is trusted over the pid check, which cannot see pid reuse where /proc is absent.
  if (runtime.stoppedAt !== undefined) return 'stopped';
  const isAlive = probe.isAlive ?? isProcessAlive;
  if (!isAlive({ pid: runtime.pid, startTime: runtime.startTime })) return 'stopped';
  return probe.agentReachable === false ? 'unreachable' : 'running';
}
