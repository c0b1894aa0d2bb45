import { writeFileAtomic } from '@smolvm/common';
import type { Vm } from '@smolvm/runtime';

/**
 * SMOLVM_TIMINGS=FILE: where the time of one run went (`machine run`, and a packed run), for
 * tools/bench. All values are milliseconds since this process started, except the guest's own
 * clock readings. Nothing is written without the variable.
 */
export function writeRunTimings(vm: Vm, vmStart: number, commandDone: number | undefined): void {
  const file = process.env.SMOLVM_TIMINGS;
  if (!file) return;
  const at = (ms: number) => Math.round(ms);
  const info = vm.agentInfo;
  const timings = {
    vmStart: at(vmStart),
    prepared: at(vmStart + vm.timings.prepared),
    spawned: at(vmStart + vm.timings.spawned),
    agentReady: at(vmStart + vm.timings.agentReady),
    setUp: at(vmStart + vm.timings.setUp),
    commandDone: commandDone === undefined ? null : at(commandDone),
    disposed: at(performance.now()),
    // When the executable started the restore early (prestart.ts), before the CLI had loaded.
    earlyStart: vm.timings.prestartLead === undefined ? null : at(vmStart - vm.timings.prestartLead),
    guestUptimeAtReady: typeof info.kernelUptimeMs === 'number' ? info.kernelUptimeMs : null,
    agentStartToReady: typeof info.agentStartMs === 'number' ? info.agentStartMs : null,
    agentSnapshot: info.snapshot === true,
    restored: vm.restored,
  };
  writeFileAtomic(file, JSON.stringify(timings) + '\n');
}
