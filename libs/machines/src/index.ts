// Public API of @smolvm/machines: persistent machines (docs/architecture.md#persistent-machines) — their disks, the
// detached per-VM supervisor and its socket, and the lifecycle the CLI and the API expose.
export {
  Machines,
  MachineStartError,
  type MachinesOptions,
  type MachineStatus,
  type StartOptions,
  type StartResult,
} from './machines';
export { MachineNotRunningError, connectSupervisor, connectRunning } from './connect';
export { superviseMachine, envOf, type LastExit } from './supervisor';
export { machineFiles, type MachineFiles } from './layout';
export {
  createDisk,
  growDisk,
  compactDisk,
  allocatedBytes,
  shrunkCopy,
  copyDiskSparse,
  createCowDisk,
  DiskToolError,
  type DiskFormat,
} from './disks';
export { machinePackBoot, writePackDisks } from './from-pack';
export { monitorMachine, runHealthCheck, type MonitorOptions, type HealthResult } from './monitor';
export {
  byteCounter,
  assertUnderCap,
  uploadFile,
  uploadTar,
  treeBytes,
  packTree,
  openGuestPath,
  saveGuestFile,
  extractGuestTree,
  TREE_LIMITS,
  type TreeLimits,
  type GuestEntry,
} from './transfer';
export { machineInput, machineNetwork, pinnedImage, type PullImage, type PinnedImageOptions } from './workload';
export { machineExecOptions } from './exec-options';
export { guestFileError, shellExitOf, TransferTooLargeError, GuestPathError } from './guest-errors';
export { machineSummary, machineDetails, type MachineSummary, type MachineDetails } from './summary';
export {
  SnapshotStore,
  SnapshotNotFoundError,
  SnapshotDamagedError,
  parseSnapshotId,
  snapshotsRoot,
  SNAPSHOT_DISKS,
  SNAPSHOT_VM_DIR,
  type SnapshotSummary,
  type SnapshotMeta,
} from './snapshot-store';
export {
  forkNames,
  isSnapshotId,
  MAX_FORKS,
  type ForkOptions,
  type FromSnapshotOptions,
  type SnapshotCreateResult,
} from './snapshots';
export {
  importPackedSnapshot,
  importedSnapshotId,
  snapshotPackParts,
  openPackSection,
  GUEST_FILES,
  type SnapshotPackParts,
  type SnapshotPackSection,
  type ImportOptions,
} from './snapshot-pack';
