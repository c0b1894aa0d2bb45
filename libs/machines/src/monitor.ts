// `machine monitor`: a foreground loop that keeps one machine alive and healthy. It starts the
// machine when it is down, runs the Smolfile's [health] exec check every interval (after the
// startup grace), and restarts the machine after `retries` consecutive failures.
import { ConflictError, delay } from '@smolvm/common';
import { AgentClient } from '@smolvm/agent-protocol';
import type { MachineHealthCheck } from '@smolvm/machine-store';
import { envOf } from './supervisor';
import type { Machines } from './machines';

export interface MonitorOptions {
  /** Starts the machine (the front end prepares its image first). */
  start(): Promise<void>;
  log(line: string): void;
  /** Aborting ends the loop; the machine is left as it is. */
  signal: AbortSignal;
  /** How often liveness is checked when the machine has no [health] check. Default 5 s. */
  livenessIntervalMs?: number;
}

export type HealthResult = { ok: true } | { ok: false; reason: string };

/** Runs the check once: healthy means exit code 0 within the timeout. */
export async function runHealthCheck(
  machines: Machines,
  name: string,
  check: MachineHealthCheck,
): Promise<HealthResult> {
  let client: AgentClient | undefined;
  try {
    client = await machines.connect(name);
    const record = machines.store.get(name);
    const session = await client.exec({
      argv: check.exec,
      env: envOf(record),
      ...(record.workdir ? { cwd: record.workdir } : {}),
      ...(record.user ? { user: record.user } : {}),
    });
    let output = '';
    const keep = (d: Buffer) => (output = (output + d.toString()).slice(-400));
    session.stdout.on('data', keep);
    session.stderr.on('data', keep);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>(
      (resolve) => (timer = setTimeout(() => resolve('timeout'), check.timeoutMs)),
    );
    const status = await Promise.race([session.exit, timedOut]);
    clearTimeout(timer);
    if (status === 'timeout') {
      await session.signal('SIGKILL').catch(() => undefined);
      return { ok: false, reason: `no answer within ${check.timeoutMs / 1000} s` };
    }
    if (status.code === 0) return { ok: true };
    const last = output.trim().split('\n').pop() ?? '';
    return {
      ok: false,
      reason: `${status.code === null ? status.signal : `exit code ${status.code}`}${last ? `: ${last}` : ''}`,
    };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  } finally {
    client?.close();
  }
}

export async function monitorMachine(machines: Machines, name: string, options: MonitorOptions): Promise<void> {
  const { log, signal } = options;
  const record = machines.store.get(name);
  // Restarting is what monitor does, and an ephemeral machine is removed when it stops.
  if (record.ephemeral) {
    throw new ConflictError(
      `machine monitor restarts machines, and machine "${name}" is ephemeral (machine run -d): it is removed when it stops`,
      {
        remedy:
          'monitor a persistent machine: `smolvm machine create NAME -s Smolfile`, then `smolvm machine monitor --name NAME`',
      },
    );
  }
  const check = record.health;
  log(
    check
      ? `monitoring ${name}: \`${check.exec.join(' ')}\` every ${check.intervalMs / 1000} s (timeout ${check.timeoutMs / 1000} s, ${check.retries} retries, grace ${check.startupGraceMs / 1000} s)`
      : `monitoring ${name}: no [health] check, restarting it whenever it stops`,
  );
  let failures = 0;
  let graceUntil = 0;
  let healthy: boolean | undefined;
  const restart = async (why: string) => {
    log(`restarting ${name}: ${why}`);
    await machines.stop(name);
    await options.start();
    log(`${name} is running again`);
    failures = 0;
    healthy = undefined;
    graceUntil = Date.now() + (check?.startupGraceMs ?? 0);
  };
  while (!signal.aborted) {
    try {
      const { state } = await machines.status(name);
      if (state !== 'running') {
        log(state === 'unreachable' ? `${name} does not answer` : `${name} is ${state}; starting it`);
        if (state === 'unreachable') await restart('its agent does not answer');
        else {
          await options.start();
          log(`${name} is running`);
          failures = 0;
          healthy = undefined;
          graceUntil = Date.now() + (check?.startupGraceMs ?? 0);
        }
      } else if (check && Date.now() >= graceUntil) {
        const result = await runHealthCheck(machines, name, check);
        if (signal.aborted) break;
        if (result.ok) {
          if (healthy !== true) log(`${name} is healthy`);
          healthy = true;
          failures = 0;
        } else {
          failures++;
          healthy = false;
          log(`health check failed (${failures}/${check.retries}): ${result.reason}`);
          if (failures >= Math.max(1, check.retries)) await restart(`${failures} failed health checks in a row`);
        }
      }
    } catch (err) {
      log(`error: ${(err as Error).message}`);
    }
    await delay(check?.intervalMs ?? options.livenessIntervalMs ?? 5_000, { signal });
  }
  log(`stopped monitoring ${name} (the machine is left as it is)`);
}
