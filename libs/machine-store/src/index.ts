// Public API of @smolvm/machine-store: records of named machines on disk, validated names,
// crash-safe writes, per-machine locks, lifecycle state.
export { validateMachineName, isValidMachineName, DEFAULT_MACHINE_NAME, MAX_MACHINE_NAME_LENGTH } from './names';
export {
  SCHEMA_VERSION,
  MACHINE_DEFAULTS,
  MachineRecordError,
  newMachineRecord,
  parseMachineRecord,
  validateMachineRecord,
  type MachineHealthCheck,
  type MachineRecord,
  type MachineRuntime,
  type NewMachine,
} from './record';
export {
  MachineStore,
  RECORD_FILE,
  type CreateOptions,
  type DeleteOptions,
  type LockWaitOptions,
  type MachineListing,
  type MachineStoreOptions,
  type SkipReason,
  type SkippedEntry,
} from './store';
export {
  acquireLock,
  tryAcquireLock,
  readLockHolder,
  isHolderStale,
  DEFAULT_LOCK_TIMEOUT_MS,
  type AcquireOptions,
  type LockHandle,
  type LockHolder,
} from './lock';
export { machineState, type MachineState, type StateProbe } from './state';
export { stagingName, parseStagingName, type StagingInfo } from './staging';
