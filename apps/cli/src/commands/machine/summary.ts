// The public shape of a machine in `ls --json` / `status --json`: a stable subset of the record,
// so scripts do not depend on internal fields.
import type { MachineRecord, MachineState } from '@smolvm/machine-store';

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

/** The STATE column and `state:` line: an ephemeral machine says so next to its state. */
export function stateLabel(summary: MachineSummary): string {
  return summary.ephemeral ? `${summary.state} (ephemeral)` : summary.state;
}
