// Public API of @smolvm/machines: persistent machines (docs/architecture.md#persistent-machines) — their disks, the detached
// per-VM supervisor and its socket, and the lifecycle the CLI and the API expose.
export { Machines, MachineStartError, MachineNotRunningError, connectSupervisor, type MachinesOptions, type MachineStatus, type StartResult } from './machines';
export { superviseMachine, envOf, type LastExit } from './supervisor';
export { machineFiles, type MachineFiles } from './layout';
export { createDisk, growDisk, compactDisk, allocatedBytes, shrunkCopy, DiskToolError } from './disks';
export { machinePackBoot, writePackDisks } from './from-pack';
export { monitorMachine, runHealthCheck, type MonitorOptions, type HealthResult } from './monitor';
