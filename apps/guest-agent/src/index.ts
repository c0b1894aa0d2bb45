// Public surface of the guest agent for tests and tools: the handlers (served on a host by
// tests) and the pieces the VM entry point (main.ts) composes.
export { createHandlers, type HandlerOptions, type Handlers } from './handlers';
export { planSetup, NINEP_OPTIONS, type SetupStep } from './setup-plan';
export { resolveUser, type Credentials } from './users';
export { findInterface } from './system';
export { findAgentPort, openPort, type PortMode } from './port';
