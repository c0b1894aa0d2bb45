// Public API of @smolvm/runtime: boots a VM for a workload (kernel, agent image, driver, agent
// channel, guest root setup) and tears it down without leftovers.
export { startVm, type StartVmOptions, type GuestAssets } from './start';
export { packedAgentImageWithBlob, type PackedAgentInputs } from './packed-agent';
export { Vm, type BootTimings, type GuestFile, type GuestFiles } from './vm';
export { IMAGE_DISK_ID, OVERLAY_DISK_ID, STORAGE_DISK_ID, type DiskRange, type PersistentDisks } from './layout';
export { locateKernel } from './kernel';
export { createRunDir, runRoot, sweepRunDirs, type RunDir } from './run-dir';
export { exitCodeFor } from './exit-code';
export { GUEST_SSH_AUTH_SOCK, type NetworkOptions } from './network';
export { prestartRun, parseRunRecipe, type RunRecipe, type PrestartedRun } from './prestart';
export { runInitCommands, workloadArgv, BARE_DEFAULT_ARGV, type InitOptions } from './workload';
