// Early restores: a start that will restore a boot snapshot the way an earlier one did can begin
// before it knows its spec (the CLI does it before loading itself). The earlier restore left a
// recipe (Vm.restoreRecipe); prestartRun makes a run directory, listens on its agent socket and
// has the driver start from the recipe there. startVm takes the result over (StartVmOptions.
// prestarted) if the driver finds it is exactly what it would start, and ends it otherwise.
// Small on purpose: the CLI's loader runs this before any of the CLI is loaded.
import net from 'node:net';
import path from 'node:path';
import type { PrestartedRestore } from '@smolvm/driver-api';
import { createRunDir, type RunDir } from './run-dir';

/** A restore as it can be started again (plain JSON, kept by the caller). */
export interface RunRecipe {
  v: 1;
  driver: string;
  /** The driver's own recipe (SnapshotCapability.restoreRecipe). */
  restore: unknown;
}

/** The agent socket QEMU connects to: exactly one connection is accepted, anyone else's is dropped. */
export interface AgentListener {
  server: net.Server;
  connection: Promise<net.Socket>;
  /** Resolves once listening; rejects if the socket could not be bound. */
  ready: Promise<void>;
  /** For a weak listener: it keeps the event loop alive from now on, like a normal one. */
  hold(): void;
}

export interface PrestartedRun {
  readonly driver: string;
  /** performance.now() when it was started. */
  readonly startedAt: number;
  /** Hands its parts over, once: from then on they are the taker's, and discard does nothing. */
  take(): PrestartedParts | undefined;
  /** Ends the VM and removes everything the prestart made, unless it was taken. */
  discard(): void;
}

export interface PrestartedParts {
  /** performance.now() when it was started. */
  startedAt: number;
  runDir: RunDir;
  agent: AgentListener;
  restore: PrestartedRestore;
}

/** Ends an early start's VM and removes what it made: its agent socket and run directory. */
export function discardParts(parts: PrestartedParts): void {
  parts.restore.discard();
  parts.agent.server.close();
  parts.runDir.remove();
}

/**
 * The socket is bound when this returns (Node binds unix sockets synchronously). A weak listener
 * (an early start's) keeps nothing alive until hold().
 */
export function listenOnce(socketPath: string, options: { weak?: boolean } = {}): AgentListener {
  let accepted = false;
  let held = !options.weak;
  let deliver!: (s: net.Socket) => void;
  const connection = new Promise<net.Socket>((r) => (deliver = r));
  const server = net.createServer((socket) => {
    if (accepted) {
      socket.destroy();
      return;
    }
    accepted = true;
    if (!held) socket.unref();
    deliver(socket);
  });
  if (!held) server.unref();
  const ready = new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.once('listening', resolve);
  });
  ready.catch(() => undefined);
  server.listen(socketPath);
  const hold = () => {
    if (held) return;
    held = true;
    server.ref();
    void connection.then((socket) => socket.ref());
  };
  return { server, connection, ready, hold };
}

export function agentSocketPath(runDir: string): string {
  return path.join(runDir, 'agent.sock');
}

export function parseRunRecipe(value: unknown): RunRecipe | undefined {
  const r = value as Partial<RunRecipe> | null;
  return r && typeof r === 'object' && r.v === 1 && typeof r.driver === 'string' && r.restore !== undefined
    ? (r as RunRecipe)
    : undefined;
}

/**
 * Starts `recipe` in a new run directory with the driver's prestart function (`start`). Never
 * throws; undefined when nothing could be started (nothing is left then).
 */
export function prestartRun(
  recipe: RunRecipe,
  start: (restore: unknown, runDir: string, env: NodeJS.ProcessEnv) => PrestartedRestore | undefined,
  env: NodeJS.ProcessEnv = process.env,
): PrestartedRun | undefined {
  const startedAt = performance.now();
  let runDir: RunDir | undefined;
  let agent: AgentListener | undefined;
  try {
    runDir = createRunDir('vm', env);
    agent = listenOnce(agentSocketPath(runDir.path), { weak: true });
    agent.server.on('error', () => undefined);
    const restore = start(recipe.restore, runDir.path, env);
    if (!restore) throw new Error('the driver cannot start this recipe');
    let parts: PrestartedParts | undefined = { startedAt, runDir, agent, restore };
    return {
      driver: recipe.driver,
      startedAt,
      take() {
        const taken = parts;
        parts = undefined;
        taken?.agent.hold();
        taken?.restore.hold();
        return taken;
      },
      discard() {
        const p = parts;
        parts = undefined;
        if (p) discardParts(p);
      },
    };
  } catch {
    agent?.server.close();
    runDir?.remove();
    return undefined;
  }
}
