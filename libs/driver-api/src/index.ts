// Public API of @smolvm/driver-api: the hypervisor-driver contract (see README.md), the driver
// registry, typed errors, and the conformance suite every driver runs.
export type {
  Driver,
  DriverCapabilities,
  ProbeResult,
  VmHandle,
  VmExit,
  VmExitReason,
  StopOptions,
  SnapshotCapability,
  RestoreOptions,
  PrestartedRestore,
  ResizeCapability,
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
export { runDriverConformance, type ConformanceOptions } from './conformance/suite';
export { prepareConformanceFixtures, FixtureError, type ConformanceFixtures, type FixtureOptions } from './conformance/fixtures';
export { LineAgent, type CommandResult } from './conformance/line-agent';
export { cpioNewc, type CpioEntry } from './conformance/cpio';
export { processesMentioning } from './conformance/booter';
