// `smolvm machine exec`: the same session handling as `run`, against the machine's supervisor.
// Also the whole of the fast exec path (src/exec-fast.ts, its own bundle): only light imports
// here (not @smolvm/machines' index, which brings the runtime, nor anything of images).
import { SmolvmError, UsageError, formatError } from '@smolvm/common';
import {
  ProtocolError,
  SessionLostError,
  type AgentClient,
  type ExecOptions,
  type ExecSession,
} from '@smolvm/agent-protocol';
import { parseEnvFlag } from '@smolvm/config/env';
import { MachineStore, validateMachineName } from '@smolvm/machine-store';
import { connectRunning, machineExecOptions, shellExitOf } from '@smolvm/machines/connect';
import { runSession, ttyOptions } from '../../output/session';
import type { ExecArgs } from './exec';

export async function runExec(args: ExecArgs): Promise<number> {
  validateMachineName(args.name);
  const argv = (args['--'] ?? []).map(String);
  if (argv.length === 0)
    throw new UsageError('machine exec needs a command', {
      remedy: `name one after --, e.g. smolvm machine exec --name ${args.name} -- /bin/sh`,
    });
  if (args.tty && args.interactive && !process.stdin.isTTY) {
    throw new UsageError('-it needs a terminal on stdin, and stdin is not one', {
      remedy: 'drop -t to pipe data in with -i, or run from a terminal',
    });
  }
  const record = new MachineStore().get(args.name);
  const options = machineExecOptions(record, argv, {
    env: (args.env ?? []).map((e) => parseEnvFlag(e)),
    ...(args.workdir !== undefined ? { workdir: args.workdir } : {}),
  });
  const client = await connectRunning(record);
  try {
    const session = await execOrExitCode(client, {
      ...options,
      stdin: args.interactive,
      ...ttyOptions(args.tty),
    });
    if (typeof session === 'number') return session;
    return await runSession(session, {
      interactive: args.interactive,
      tty: args.tty,
      onTerminate: () => session.signal('SIGKILL'),
    });
  } catch (err) {
    if (err instanceof ProtocolError || err instanceof SessionLostError) {
      throw new SmolvmError(`machine "${args.name}" went away while the command ran (${err.message})`, {
        remedy: `see \`smolvm machine status --name ${args.name}\``,
      });
    }
    throw err;
  } finally {
    client.close();
  }
}

/** A command the guest cannot find or run exits 127/126 with one line, as a shell would. */
export async function execOrExitCode(
  client: Pick<AgentClient, 'exec'>,
  options: ExecOptions,
): Promise<ExecSession | number> {
  try {
    return await client.exec(options);
  } catch (err) {
    const shell = shellExitOf(err);
    if (!shell) throw err;
    process.stderr.write(formatError(err) + '\n');
    return shell.exitCode;
  }
}
