// Public API of @smolvm/agent-image: builds and caches the agent image (erofs: busybox, Node and
// its libraries, the guest agent, koffi) and states the boot contract (README.md).
export { findStaticBusybox } from './busybox';
export { locateKoffi, koffiRuntimeFiles, type KoffiFiles } from './koffi';
export {
  ensureAgentImage,
  DEFAULT_NODE_FLAGS,
  UNUSED_IMAGE_MS,
  type AgentImageOptions,
  type AgentImage,
} from './ensure';
export { AGENT_DISK_ID, agentKernelArgs } from './boot';
export { RUNTIME_DISK_ID, type RuntimeSource } from './runtime';
export { FORMAT_VERSION } from './layout';
export { readElf, hasSymbolTable, type ElfInfo } from './elf';
export { resolveLibraries, type ResolvedLibraries } from './libraries';
export { buildSnapshotInGuest, snapshotBlobPath } from './guest-snapshot';
