// The one mapping from errors to HTTP: a status and a stable code per error class, and the
// message the CLI would print (what, why, what to do). Anything that is not one of ours is an
// internal error whose text (paths, stack) stays in the server's log.
import { ConfigError, ConflictError, NotFoundError, SmolvmError, UsageError, formatError } from '@smolvm/common';
import {
  GuestPathError,
  MachineNotRunningError,
  MachineStartError,
  SnapshotDamagedError,
  TransferTooLargeError,
} from '@smolvm/machines';
import type { ErrorBody } from './schemas';

/** An error the API raises itself, with its status and code. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

interface FastifyLikeError {
  statusCode?: number;
  code?: string;
  validation?: unknown;
  message: string;
}

export function toHttpError(err: unknown): { status: number; body: ErrorBody } {
  const message = (e: unknown) => formatError(e).replace(/^error: /, '');
  if (err instanceof HttpError) return { status: err.statusCode, body: { error: err.message, code: err.code } };
  if (err instanceof TransferTooLargeError) return { status: 413, body: { error: message(err), code: 'too-large' } };
  if (err instanceof ConfigError) return { status: 422, body: { error: message(err), code: 'invalid-config' } };
  if (err instanceof UsageError) return { status: 422, body: { error: message(err), code: 'unprocessable' } };
  if (err instanceof NotFoundError) return { status: 404, body: { error: message(err), code: 'not-found' } };
  if (err instanceof MachineNotRunningError) return { status: 409, body: { error: message(err), code: 'not-running' } };
  if (err instanceof ConflictError) return { status: 409, body: { error: message(err), code: 'conflict' } };
  if (err instanceof MachineStartError) {
    const detail = err.detail.length > 0 ? ` (last output: ${err.detail.slice(-3).join(' | ')})` : '';
    return { status: 500, body: { error: message(err) + detail, code: 'start-failed' } };
  }
  if (err instanceof SnapshotDamagedError)
    return { status: 500, body: { error: message(err), code: 'snapshot-damaged' } };
  if (err instanceof GuestPathError) return { status: 500, body: { error: message(err), code: 'guest-error' } };
  if (err instanceof SmolvmError) return { status: 500, body: { error: message(err), code: 'failed' } };
  // Fastify's own: bad JSON, wrong media type, body too large, schema validation.
  const f = err as FastifyLikeError;
  if (f && typeof f === 'object' && typeof f.message === 'string') {
    if (f.validation) return { status: 400, body: { error: `invalid request: ${f.message}`, code: 'invalid-request' } };
    if (f.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      return {
        status: 413,
        body: { error: 'the request body is larger than the limit for this route', code: 'body-too-large' },
      };
    if (f.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      return {
        status: 415,
        body: {
          error:
            'unsupported Content-Type: send application/json (files: application/octet-stream or application/x-tar)',
          code: 'unsupported-media-type',
        },
      };
    if (typeof f.statusCode === 'number' && f.statusCode >= 400 && f.statusCode < 500)
      return { status: f.statusCode, body: { error: `invalid request: ${f.message}`, code: 'invalid-request' } };
  }
  return { status: 500, body: { error: 'internal error; see the server log', code: 'internal' } };
}
