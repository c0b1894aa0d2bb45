// Connecting to a running machine's supervisor: all that `machine exec` needs of this library.
// A file of its own (entry point `@smolvm/machines/connect`) so the CLI's fast exec path loads
// neither the lifecycle nor the runtime behind it.
import net from 'node:net';
import { ConflictError, SmolvmError, withTimeout } from '@smolvm/common';
import { AgentClient } from '@smolvm/agent-protocol';
import { machineState, type MachineRecord } from '@smolvm/machine-store';

const CONNECT_TIMEOUT_MS = 5_000;

export class MachineNotRunningError extends ConflictError {}

/** Connects to a machine's supervisor socket and waits for its hello. */
export async function connectSupervisor(socketPath: string, timeoutMs = CONNECT_TIMEOUT_MS): Promise<AgentClient> {
  const socket = net.connect(socketPath);
  const client = new AgentClient(socket);
  try {
    await withTimeout(client.waitReady(), timeoutMs, `connecting to ${socketPath}`);
    return client;
  } catch (err) {
    client.close();
    throw err;
  }
}

/** A client connected to the supervisor of the running machine `record` describes (exec, cp). */
export async function connectRunning(record: MachineRecord): Promise<AgentClient> {
  const { name, runtime: rt } = record;
  if (!rt || machineState(record) !== 'running') {
    throw new MachineNotRunningError(`machine "${name}" is not running`, {
      remedy: `start it with \`smolvm machine start --name ${name}\``,
    });
  }
  try {
    return await connectSupervisor(rt.socket);
  } catch (err) {
    throw new SmolvmError(`machine "${name}" does not answer: ${(err as Error).message}`, {
      remedy: `restart it: \`smolvm machine stop --name ${name}\` then \`smolvm machine start --name ${name}\``,
    });
  }
}

// What the fast exec path needs besides the connection, from light modules of their own.
export { machineExecOptions } from './exec-options';
export { shellExitOf } from './guest-errors';
