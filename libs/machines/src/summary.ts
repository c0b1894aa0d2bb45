// The public shape of a machine (`machine ls --json`, `status --json` and the HTTP API): a stable
// subset of the record, so scripts do not depend on internal fields.
import type { MachineRecord, MachineState } from '@smolvm/machine-store';
import type { MachineStatus } from './machines';

export interface MachineSummary {
  name: string;
  state: MachineState;
  image: string | null;
  cpus: number;
  memoryMiB: number;
  storageGiB: number;
  overlayGiB: number;
  net: boolean;
  /** Made by `machine run -d`: removed with its disks when it stops. */
  ephemeral: boolean;
  createdAt: string;
}

/** `status --json`: the summary with the live details. */
export interface MachineDetails extends MachineSummary {
  pingMs?: number;
  supervisorPid?: number;
  startedAt?: string;
  lastExit?: { at: string; cause: string; detail: string };
  diskUsage: { overlayBytes: number; storageBytes: number };
}

export function machineSummary(record: MachineRecord, state: MachineState): MachineSummary {
  return {
    name: record.name,
    state,
    image: record.image ?? null,
    cpus: record.cpus,
    memoryMiB: record.memoryMiB,
    storageGiB: record.storageGiB,
    overlayGiB: record.overlayGiB,
    net: record.net,
    ephemeral: record.ephemeral === true,
    createdAt: record.createdAt,
  };
}

export function machineDetails(status: MachineStatus): MachineDetails {
  return {
    ...machineSummary(status.record, status.state),
    ...(status.pingMs !== undefined ? { pingMs: Math.round(status.pingMs * 10) / 10 } : {}),
    ...(status.state === 'running' && status.record.runtime
      ? { supervisorPid: status.record.runtime.pid, startedAt: status.record.runtime.startedAt }
      : {}),
    ...(status.lastExit
      ? { lastExit: { at: status.lastExit.at, cause: status.lastExit.cause, detail: status.lastExit.detail } }
      : {}),
    diskUsage: status.disks,
  };
}
