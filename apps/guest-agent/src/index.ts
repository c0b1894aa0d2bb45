// Public surface of the guest agent for tests and tools: the handlers (served on a host by
// tests) and the pieces the VM entry point (main.ts) composes.
export { createHandlers, type HandlerOptions, type Handlers } from './handlers';
export {
  planSetup,
  planRootOnly,
  planRun,
  planExecRoot,
  EXEC_ROOTS_DIR,
  NINEP_OPTIONS,
  type SetupStep,
} from './setup-plan';
export { resolveUser, type Credentials } from './users';
export { findInterface, type GuestSystem } from './system';
export { warmExecPath } from './warm-up';
export { findAgentPort, openPort, type PortMode } from './port';
