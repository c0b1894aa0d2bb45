import { SmolvmError, type SmolvmErrorOptions } from '@smolvm/common';

/**
 * The peer broke the protocol (oversized or malformed frame, unknown stream, credit overrun,
 * version mismatch) or the channel closed. The connection is unusable afterwards.
 */
export class ProtocolError extends SmolvmError {
  constructor(message: string, options: SmolvmErrorOptions = {}) {
    super(`agent protocol: ${message}`, options);
  }
}

/** Codes an agent answers a failed request with; anything else arrives as `internal`. */
export const ErrorCodes = [
  'bad-request',
  'unknown-op',
  'command-not-found',
  'permission-denied',
  'bad-workdir',
  'unknown-user',
  'no-such-session',
  'setup-failed',
  'not-found',
  'too-large',
  'io-error',
  'unsupported',
  'internal',
] as const;
export type ErrorCode = (typeof ErrorCodes)[number];

export function isErrorCode(value: string): value is ErrorCode {
  return (ErrorCodes as readonly string[]).includes(value);
}

/** A request the agent understood but could not carry out. The connection stays usable. */
export class AgentRequestError extends SmolvmError {
  readonly code: ErrorCode;
  readonly op: string;

  constructor(op: string, code: ErrorCode, message: string, options: SmolvmErrorOptions = {}) {
    super(`agent ${op}: ${message}`, options);
    this.code = code;
    this.op = op;
  }
}
