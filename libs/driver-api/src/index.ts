// Public API of @smolvm/driver-api: the hypervisor-driver contract (see README.md), the driver
// registry, typed errors. The conformance suite every driver runs: @smolvm/driver-api/conformance.
export type {
  Driver,
  DriverCapabilities,
  ProbeResult,
  DriverFeatures,
  VmHandle,
  VmExit,
  VmExitReason,
  StopOptions,
  SnapshotCapability,
  RestoreOptions,
  PrestartedRestore,
} from './driver';
export type { VmSpec, BlockDeviceSpec, HostShareSpec, AgentChannelSpec, NetworkEndpointSpec } from './spec';
export {
  DriverUnavailableError,
  UnknownDriverError,
  NoUsableDriverError,
  InvalidVmSpecError,
  VmStartError,
  SnapshotError,
  SnapshotTimeoutError,
  PrestartMismatchError,
  type VmStartErrorDetails,
} from './errors';
export { validateVmSpec } from './validate';
export { readLogTail } from './log-tail';
export { boundConsoleLog, trimLog, CONSOLE_LOG_MAX_BYTES, CONSOLE_LOG_KEEP_BYTES } from './console-bound';
export {
  DriverRegistry,
  defaultRegistry,
  registerDriver,
  listDrivers,
  selectDriver,
  type SelectDriverOptions,
  type SelectedDriver,
} from './registry';
export { registerEarlyStart, findEarlyStart, type EarlyStart, type EarlyStartOptions } from './early-start';
// The conformance suite is at @smolvm/driver-api/conformance (tests only).
