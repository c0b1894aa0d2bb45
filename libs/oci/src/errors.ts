// Registry failures as typed errors with remedies: the CLI prints one line, and callers can
// tell "not found" from "not allowed" from "corrupt" without parsing messages.
import { NotFoundError, SmolvmError, type SmolvmErrorOptions } from '@smolvm/common';

export const REGISTRIES_EDIT_REMEDY = "run 'smolvm config registries edit' to set credentials for";

export class RegistryAuthError extends SmolvmError {
  constructor(
    readonly registry: string,
    readonly kind: 'required' | 'failed' | 'denied',
    detail?: string,
    options: SmolvmErrorOptions = {},
  ) {
    const what = { required: 'authentication required', failed: 'authentication failed', denied: 'access denied' }[
      kind
    ];
    super(`${what} for ${registry}${detail ? ` (${detail})` : ''}`, {
      remedy: options.remedy ?? `${REGISTRIES_EDIT_REMEDY} ${registry}`,
      cause: options.cause,
    });
  }
}

export class ImageNotFoundError extends NotFoundError {}

/** The registry (or something between us and it) served bytes that are not what was asked for. */
export class DigestMismatchError extends SmolvmError {
  constructor(
    readonly expected: string,
    readonly actual: string,
    readonly what: string,
  ) {
    super(`${what}: digest mismatch (expected ${expected}, got ${actual})`, {
      remedy:
        'the content was corrupted in transit or by the registry; retry, and report it to the registry operator if it persists',
    });
  }
}

export class SizeMismatchError extends SmolvmError {
  constructor(
    readonly expected: number,
    readonly actual: number,
    readonly what: string,
  ) {
    super(`${what}: size mismatch (expected ${expected} bytes, got ${actual}${actual > expected ? ' or more' : ''})`, {
      remedy:
        'the content was corrupted in transit or by the registry; retry, and report it to the registry operator if it persists',
    });
  }
}

/** Any other answer the protocol does not allow here; carries the status and registry error code. */
export class RegistryError extends SmolvmError {
  constructor(
    message: string,
    readonly status?: number,
    readonly code?: string,
    options: SmolvmErrorOptions = {},
  ) {
    super(message, options);
  }
}

/** Transient failures worth another try: 5xx, 429 and dropped connections. */
export class RetryableError extends RegistryError {}

/** A transfer that stopped partway (connection cut, short body): resumable from where it stopped. */
export class InterruptedTransferError extends RetryableError {}
