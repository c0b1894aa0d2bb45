// Errors that come from the guest agent, mapped once for every front end (CLI and API): a typed
// error per agent code, with a message that names what the user asked for and never the guest's
// internals (errno text, staging file names).
import { ConflictError, NotFoundError, SmolvmError, UsageError } from '@smolvm/common';
import { AgentRequestError, MAX_TRANSFER_BYTES } from '@smolvm/agent-protocol';

/** A transfer at or over the 4 GiB cap, or a guest sending more than it may. */
export class TransferTooLargeError extends UsageError {}

/** What a guest path transfer failed on, with the guest's internals (errno, staging names) left out. */
export class GuestPathError extends SmolvmError {}

export const TOO_LARGE_REMEDY = 'mount the host directory with --volume instead';

/**
 * The one place agent errors of a file operation become errors for people: a stable class per
 * code and a message naming `where` (NAME:/path), never the guest's errno text or staging file.
 */
export function guestFileError(err: unknown, where: string): unknown {
  if (!(err instanceof AgentRequestError)) return err;
  switch (err.code) {
    case 'too-large':
      return new TransferTooLargeError(
        `${where} is 4 GiB or more, exceeding the byte cap of ${MAX_TRANSFER_BYTES} bytes per transfer`,
        { remedy: TOO_LARGE_REMEDY },
      );
    case 'not-found':
      return new NotFoundError(`${where}: no such file or directory`, {
        remedy: 'check the path (the parent directory must exist)',
      });
    case 'permission-denied':
      return new GuestPathError(`${where}: permission denied in the machine`, {
        remedy: 'pick a path the machine user may write',
      });
    case 'is-a-directory':
      return new UsageError(`${where} is a directory`, { remedy: 'name a file, or copy the directory as a whole' });
    case 'bad-request':
      // The agent's one refusal here (an existing tree destination) is written for people already.
      return new ConflictError(`${where}: ${err.message.replace(/^agent \w+: /, '')}`);
    default:
      return new GuestPathError(`${where}: the copy failed in the machine (${err.code})`, {
        remedy: 'check the path and the space left in the machine, then try again',
      });
  }
}

/**
 * A command the guest cannot find or run: the exit code a shell gives it (127 not found, 126 not
 * executable) and its one-line reason; undefined for any other error.
 */
export function shellExitOf(err: unknown): { exitCode: number; message: string } | undefined {
  if (!(err instanceof AgentRequestError)) return undefined;
  const exitCode = ({ 'command-not-found': 127, 'permission-denied': 126 } as Record<string, number>)[err.code];
  return exitCode === undefined ? undefined : { exitCode, message: err.message.replace(/^agent \w+: /, '') };
}
