// Public API of @smolvm/agent-protocol: the host<->guest agent protocol (see README.md for the
// wire spec). Host side: AgentClient. Guest side: AgentServer + the handlers the agent implements.
export { PROTOCOL_VERSION, DEFAULT_MAX_FRAME, DEFAULT_WINDOW, MAX_HEADER, MAX_DATA_CHUNK } from './constants';
export { ProtocolError, SessionLostError, AgentRequestError, ErrorCodes, type ErrorCode } from './errors';
export { encodeFrame, FrameDecoder, type RawFrame } from './frame';
export type { AgentInfo, HelloMessage } from './messages';
export type {
  BlockDeviceRef,
  DiskMount,
  ExecOptions,
  ExecRequest,
  ExitStatus,
  GuestNetwork,
  RelayConnectEvent,
  RootSetupSpec,
  SetupSpec,
  TtyOptions,
  VolumeMount,
} from './ops';
export { rootSetupOf } from './ops';
export {
  MAX_TRANSFER_BYTES,
  type FileInfo,
  type GetTreeOptions,
  type GetTreeRequest,
  type InstallTreeOptions,
  type PutTreeOptions,
  type PutTreeRequest,
  type TreeResult,
  type GetFileOptions,
  type GetFileRequest,
  type InstallFileOptions,
  type PutFileOptions,
  type PutFileRequest,
  type PutFileResult,
} from './files';
export { Connection, type ConnectionOptions, type Role } from './connection';
export { InboundStream, OutboundStream } from './streams';
export { AgentClient, type AgentClientOptions, type ExecSession, type RelayStreams } from './client';
export { encodePreamble, type PreambleRequest } from './preamble';
export { AgentServer, type AgentHandlers, type AgentServerOptions, type ExecIo, type ExecProcess } from './server';
export { AGENT_PORT_NAME, AGENT_DIR, AGENT_IMAGE_MARKER, GUEST_RUN_DIR } from './guest-layout';
