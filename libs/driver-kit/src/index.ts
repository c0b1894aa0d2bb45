// Public API of @smolvm/driver-kit: what any hypervisor driver needs around its process, without
// QEMU — supervision (it never outlives its parent), stop escalation, its output's tail, and
// executable lookup. Node built-ins only: a driver's early start (a CLI loader) may load it.
export {
  spawnSupervised,
  defaultSupervision,
  pdeathsigCommand,
  dropPrivilegeArgs,
  type Supervision,
  type SupervisedProcess,
  type SuperviseOptions,
} from './supervise';
export { escalateStop, type StopSteps, type StopTimings } from './stop';
export { OutputTail } from './output-tail';
export { findExecutable } from './executable';
