// Public API of @smolvm/qemu: the QEMU launcher both drivers use — argv from a VmSpec and a
// QemuTarget, supervised spawn (QEMU never outlives its parent), QMP client, console capture.
export { launchQemu, runFiles, QEMU_WIRING, type LaunchOptions } from './launch';
export { QemuVm } from './vm';
export {
  buildQemuArgv,
  kernelCmdline,
  AGENT_PORT_NAME,
  AGENT_CHARDEV_ID,
  NINEP_SECURITY_MODEL,
  type MachineStateArgs,
} from './argv';
export { launchSaveable, saveQemuVm, restoreQemuVm, SNAPSHOT_FILES } from './snapshot';
export { snapshotRunningQemuVm } from './running-snapshot';
export { optValue, opts, rawArg, type OptProps } from './opts';
export type { QemuTarget, RunFiles } from './target';
export { QmpClient, QmpError, QmpConnectionError, type QmpEvent, type QmpVersion } from './qmp';
export {
  prestartQemuRestore,
  parseQemuRestoreRecipe,
  recipeCommand,
  recipeIn,
  type PrestartedQemu,
  type QemuRestoreRecipe,
} from './prestart';
