// Guest errors reach people (CLI and API alike) with a stable class and without the guest's
// internals: no errno text, no staging file name.
import { ConflictError, NotFoundError, UsageError, formatError } from '@smolvm/common';
import { AgentRequestError } from '@smolvm/agent-protocol';
import { GuestPathError, TransferTooLargeError, guestFileError, shellExitOf } from '../src/guest-errors';

it('says a missing guest directory once, naming the path asked for and not the staging file', () => {
  const raw = new AgentRequestError(
    'putFile',
    'not-found',
    "ENOENT: no such file or directory, open '/workspace/no/such/dir/.f.smolvm-1a2b3c.part'",
  );
  const err = guestFileError(raw, 'dev:/workspace/no/such/dir/f');
  expect(err).toBeInstanceOf(NotFoundError);
  const line = formatError(err);
  expect(line).toBe(
    'error: dev:/workspace/no/such/dir/f: no such file or directory; check the path (the parent directory must exist)',
  );
  expect(line).not.toMatch(/ENOENT|\.part|smolvm-/);
});

it.each([
  ['too-large', TransferTooLargeError],
  ['permission-denied', GuestPathError],
  ['is-a-directory', UsageError],
  ['io-error', GuestPathError],
  ['internal', GuestPathError],
] as const)('maps %s to a typed error without the agent text', (code, type) => {
  const err = guestFileError(new AgentRequestError('getFile', code, 'EIO: i/o error, read /secret/.x.part'), 'dev:/f');
  expect(err).toBeInstanceOf(type);
  expect((err as Error).message).not.toMatch(/EIO|secret|\.part/);
});

it("reports an existing tree destination as a conflict, in the agent's words", () => {
  const err = guestFileError(
    new AgentRequestError(
      'putTree',
      'bad-request',
      '/workspace/tree already exists; copy to a new path, or remove it first',
    ),
    'dev:/workspace',
  );
  expect(err).toBeInstanceOf(ConflictError);
  expect((err as Error).message).toBe(
    'dev:/workspace: /workspace/tree already exists; copy to a new path, or remove it first',
  );
});

it("passes errors that are not the agent's through untouched", () => {
  const own = new ConflictError('x');
  expect(guestFileError(own, 'dev:/f')).toBe(own);
});

it('gives a command the guest cannot find or run the exit code a shell would', () => {
  expect(shellExitOf(new AgentRequestError('exec', 'command-not-found', 'nope: command not found'))).toEqual({
    exitCode: 127,
    message: 'nope: command not found',
  });
  expect(
    shellExitOf(new AgentRequestError('exec', 'permission-denied', '/etc/passwd: permission denied'))?.exitCode,
  ).toBe(126);
  expect(shellExitOf(new AgentRequestError('exec', 'bad-workdir', 'x'))).toBeUndefined();
  expect(shellExitOf(new Error('x'))).toBeUndefined();
});
