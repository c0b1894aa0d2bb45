// Early restores: a start that will restore a boot snapshot the way an earlier one did can begin
// before it knows its spec (the CLI does it before loading itself). The earlier restore left a
// recipe (Vm.restoreRecipe); prestartRun makes a run directory, listens on its agent socket and
// has the driver start from the recipe there. startVm takes the result over (StartVmOptions.
// prestarted) if the driver finds it is exactly what it would start, and ends it otherwise.
// Small on purpose: the CLI's loader runs this before any of the CLI is loaded.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { encodePreamble } from '@smolvm/agent-protocol/preamble';
import type { EarlyStartOptions, PrestartedRestore } from '@smolvm/driver-api';
import { createRunDir, type RunDir } from './run-dir';

/** A restore as it can be started again (plain JSON, kept by the caller). */
export interface RunRecipe {
  v: 1;
  driver: string;
  /** The driver's own recipe (SnapshotCapability.restoreRecipe). */
  restore: unknown;
  /**
   * The guest's setup request after that restore (a machine's: its disks, volumes, hostname), which
   * an early start that runs its guest sends at once (EARLY_SETUP_OPS); startVm checks it is its own.
   */
  setup?: Record<string, unknown>;
  /**
   * The snapshot's device state and its sha256: an early start whose guest runs before the taker has
   * checked the snapshot (EarlyStartOptions.run) starts only if the file still has these bytes.
   */
  state?: { file: string; sha256: string };
}

/**
 * What an early start with a setup sends the guest, in this order: the clock, fresh entropy (before
 * anything mounts or runs: every restore of a snapshot shares its RNG state), then the setup.
 */
export const EARLY_SETUP_OPS = ['setTime', 'reseed', 'setup'];

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
  /** The setup sent to the guest with EARLY_SETUP_OPS on connection, if one was. */
  setup?: Record<string, unknown>;
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

function sameBytes(file: string, sha256: string): boolean {
  try {
    return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex') === sha256;
  } catch {
    return false;
  }
}

export function parseRunRecipe(value: unknown): RunRecipe | undefined {
  const r = value as Partial<RunRecipe> | null;
  return r &&
    typeof r === 'object' &&
    r.v === 1 &&
    typeof r.driver === 'string' &&
    r.restore !== undefined &&
    (r.setup === undefined || (typeof r.setup === 'object' && r.setup !== null && !Array.isArray(r.setup))) &&
    (r.state === undefined ||
      (typeof r.state === 'object' &&
        r.state !== null &&
        typeof r.state.file === 'string' &&
        typeof r.state.sha256 === 'string'))
    ? (r as RunRecipe)
    : undefined;
}

/**
 * Starts `recipe` in a new run directory with the driver's prestart function (`start`). Never
 * throws; undefined when nothing could be started (nothing is left then).
 */
export function prestartRun(
  recipe: RunRecipe,
  start: (
    restore: unknown,
    runDir: string,
    env: NodeJS.ProcessEnv,
    options?: EarlyStartOptions,
  ) => PrestartedRestore | undefined,
  env: NodeJS.ProcessEnv = process.env,
  options: EarlyStartOptions = {},
): PrestartedRun | undefined {
  const startedAt = performance.now();
  let runDir: RunDir | undefined;
  let agent: AgentListener | undefined;
  try {
    // A damaged snapshot must not run (and mount a machine's disks) before the taker would refuse it.
    if (options.run && recipe.state && !sameBytes(recipe.state.file, recipe.state.sha256)) return undefined;
    runDir = createRunDir('vm', env);
    agent = listenOnce(agentSocketPath(runDir.path), { weak: true });
    agent.server.on('error', () => undefined);
    const restore = start(recipe.restore, runDir.path, env, options);
    if (!restore) throw new Error('the driver cannot start this recipe');
    // A guest that runs at once can be set up at once: the preamble waits in the channel until the
    // restored agent reads it, and the taker's AgentClient adopts the answers (boot.ts).
    const setup = options.run ? recipe.setup : undefined;
    if (setup)
      void agent.connection.then((socket) => {
        // Nobody owns the connection until the start takes it over: a QEMU that ends before reading
        // the preamble (a damaged snapshot) resets it, which must not end this process.
        socket.on('error', () => undefined);
        socket.write(
          encodePreamble([
            { op: 'setTime', args: { epochMs: Date.now() } },
            { op: 'reseed', args: { entropy: crypto.randomBytes(64).toString('base64') } },
            { op: 'setup', args: setup },
          ]),
        );
      });
    let parts: PrestartedParts | undefined = { startedAt, runDir, agent, restore, ...(setup ? { setup } : {}) };
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
