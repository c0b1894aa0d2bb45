import { processStartTime } from '@smolvm/common';
import { machineState, type MachineRuntime } from '../src';

const startedAt = '2025-01-01T00:00:00Z';
const selfStart = processStartTime(process.pid);

function runtime(extra: Partial<MachineRuntime> = {}): MachineRuntime {
  return { pid: process.pid, startTime: selfStart, socket: '/tmp/s.sock', startedAt, ...extra };
}

describe('machineState', () => {
  it('is created when no supervisor ever ran', () => {
    expect(machineState({})).toBe('created');
    expect(machineState({ runtime: undefined }, { isAlive: () => true })).toBe('created');
  });

  it('is running while the recorded supervisor (pid + start time) is alive', () => {
    expect(machineState({ runtime: runtime() })).toBe('running');
  });

  it('is stopped when the pid was reused by another process', () => {
    expect(machineState({ runtime: runtime({ startTime: (selfStart ?? 0) + 777 }) })).toBe('stopped');
  });

  it('is stopped after a clean stop, whatever the pid says', () => {
    expect(machineState({ runtime: runtime({ stoppedAt: startedAt }) }, { isAlive: () => true })).toBe('stopped');
  });

  it('uses the injected liveness check', () => {
    const seen: number[] = [];
    const probe = {
      isAlive: (id: { pid: number }) => {
        seen.push(id.pid);
        return false;
      },
    };
    expect(machineState({ runtime: runtime({ pid: 4242 }) }, probe)).toBe('stopped');
    expect(seen).toEqual([4242]);
    expect(machineState({ runtime: runtime({ pid: 4242 }) }, { isAlive: () => true })).toBe('running');
  });

  it('is unreachable when the supervisor lives but the agent did not answer', () => {
    expect(machineState({ runtime: runtime() }, { isAlive: () => true, agentReachable: false })).toBe('unreachable');
    expect(machineState({ runtime: runtime() }, { isAlive: () => true, agentReachable: true })).toBe('running');
    expect(machineState({ runtime: runtime() }, { isAlive: () => false, agentReachable: false })).toBe('stopped');
  });
});
