// <bundle>/smolvm-vm.json: the QEMU process of the task (pid and start time), so `delete` after a
// shim crash can make sure the VM is gone without ever signalling a recycled pid.
import path from 'node:path';
import { processStartTime, writeJsonAtomic } from '@smolvm/common';
import fs from 'node:fs';

const FILE = 'smolvm-vm.json';

export function writeVmRecord(bundle: string, pid: number): void {
  writeJsonAtomic(path.join(bundle, FILE), { pid, startTime: processStartTime(pid) });
}

/** SIGKILLs the recorded VM if that very process still runs; true when it did. */
export function killRecordedVm(bundle: string): boolean {
  let record: { pid?: unknown; startTime?: unknown };
  try {
    record = JSON.parse(fs.readFileSync(path.join(bundle, FILE), 'utf8')) as typeof record;
  } catch {
    return false;
  }
  if (typeof record.pid !== 'number' || record.pid <= 1 || record.startTime === null || record.startTime === undefined)
    return false;
  if (processStartTime(record.pid) !== record.startTime) return false;
  try {
    process.kill(record.pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}
