// What runs in a VM besides the command itself, written once for `machine run` and the
// persistent machines' supervisor: the [dev] init commands and the bare VM's default command.
import { UsageError } from '@smolvm/common';
import type { ExecOptions, ExecSession } from '@smolvm/agent-protocol';
import type { Vm } from './vm';

/** The command of a bare VM whose base image names none (the Debian base's own is /bin/bash): a shell. */
export const BARE_DEFAULT_ARGV: readonly string[] = ['/bin/sh'];

/**
 * The command to run: the merged argv, else the bare default; an image's empty CMD stays empty (the caller refuses it).
 */
export function workloadArgv(argv: string[], hasImage: boolean): string[] {
  if (argv.length > 0) return argv;
  return hasImage ? [] : [...BARE_DEFAULT_ARGV];
}

const INIT_TAIL_BYTES = 16 * 1024;

export interface InitOptions {
  env: Record<string, string>;
  cwd?: string;
  user?: string;
  /** Every byte the init commands print (the terminal of `run`, the machine log of a supervisor). */
  onOutput: (data: Buffer, stream: 'stdout' | 'stderr') => void;
  /** Called before each command (the supervisor logs it). */
  onCommand?: (command: string) => void;
  /** Each command's session as it starts (`run` forwards Ctrl-C to it). */
  onSession?: (session: ExecSession) => void;
  /** What the user should do when one fails (where the command came from). */
  remedy: string;
}

/**
 * Runs init commands in order with `/bin/sh -c`; the first failure throws a UsageError naming the
 * command and its exit status, with the last lines it printed as `cause` (a string).
 */
export async function runInitCommands(
  vm: Pick<Vm, 'exec'>,
  commands: readonly string[],
  opts: InitOptions,
): Promise<void> {
  for (const command of commands) {
    opts.onCommand?.(command);
    const exec: ExecOptions = {
      argv: ['/bin/sh', '-c', command],
      env: opts.env,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      ...(opts.user ? { user: opts.user } : {}),
    };
    const session = await vm.exec(exec);
    opts.onSession?.(session);
    // Only the tail is kept for the error: init output is the guest's to make as long as it likes.
    let output = Buffer.alloc(0);
    const keep = (stream: 'stdout' | 'stderr') => (d: Buffer) => {
      opts.onOutput(d, stream);
      output = Buffer.concat([output, d]);
      if (output.length > INIT_TAIL_BYTES) output = output.subarray(output.length - INIT_TAIL_BYTES);
    };
    session.stdout.on('data', keep('stdout'));
    session.stderr.on('data', keep('stderr'));
    const status = await session.exit;
    // Output still buffered in the streams arrives before 'end'.
    await Promise.all([ended(session.stdout), ended(session.stderr)]);
    if (status.code !== 0) {
      const tail = output.toString('utf8').trimEnd().split('\n').slice(-5);
      throw new UsageError(
        `init command failed with ${status.code === null ? status.signal : `exit code ${status.code}`}: ${command}`,
        { remedy: opts.remedy, cause: tail.join('\n') },
      );
    }
  }
}

function ended(stream: NodeJS.ReadableStream & { readableEnded?: boolean; destroyed?: boolean }): Promise<void> {
  if (stream.readableEnded || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('end', resolve);
    stream.once('close', resolve);
  });
}
