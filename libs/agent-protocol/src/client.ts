// Host side: talks to the agent in a VM over any Duplex (normally the unix socket QEMU's
// virtio-serial chardev connected to). Everything the agent sends is validated; a
// misbehaving agent ends the connection with a ProtocolError, never a host crash.
import { Writable, type Duplex, type Readable } from 'node:stream';
import { PROTOCOL_VERSION } from './constants';
import { ProtocolError, SessionLostError } from './errors';
import { Connection, type ConnectionOptions } from './connection';
import type { AgentInfo, EventMessage, HelloMessage } from './messages';
import {
  encodeExec,
  parseExecResult,
  parseExitEvent,
  parseRelayConnect,
  rootSetupOf,
  type ExecOptions,
  type ExitStatus,
  type RootSetupSpec,
  type SetupSpec,
} from './ops';
import { SchemaError } from './schema';
import {
  encodeGetFile,
  encodeGetTree,
  encodeInstallFile,
  encodeInstallTree,
  encodePutFile,
  encodePutTree,
  parseTreeResult,
  parseFileInfo,
  parsePutFileResult,
  type FileInfo,
  type GetFileOptions,
  type GetTreeOptions,
  type InstallFileOptions,
  type InstallTreeOptions,
  type PutFileOptions,
  type PutTreeOptions,
  type TreeResult,
  type PutFileResult,
} from './files';

export interface ExecSession {
  /** Guest pid of the process. */
  readonly pid: number;
  /** The process's stdin; a sink that discards when `stdin` was not requested. */
  readonly stdin: Writable;
  readonly stdout: Readable;
  /** Empty in tty mode: the terminal merges both outputs into stdout. */
  readonly stderr: Readable;
  /** Sets the terminal size (tty mode); the process gets SIGWINCH. */
  resize(rows: number, cols: number): Promise<void>;
  /** Sends a signal by name (e.g. SIGINT, SIGTERM); in tty mode to the foreground process group. */
  signal(name: string): Promise<void>;
  /**
   * Settles when the process has exited and all its output has arrived (it may still sit in the
   * stdout/stderr buffers, like child_process 'exit'). Rejects if the connection is lost first.
   */
  readonly exit: Promise<ExitStatus>;
}

/** The host end of a relay the guest opened: what the guest client sent, and where answers go. */
export interface RelayStreams {
  input: Readable;
  output: Writable;
}

interface SessionState {
  resolve(status: ExitStatus): void;
  reject(err: Error): void;
}

export interface AgentClientOptions extends ConnectionOptions {
  /**
   * The channel's first bytes were a preamble (encodePreamble) with requests of these ops, in
   * order: this client sends no hello of its own, and `preambleDone` settles with their answers.
   */
  preamble?: string[];
}

export class AgentClient {
  private readonly conn: Connection;
  private readonly readyPromise: Promise<AgentInfo>;
  private resolveReady!: (info: AgentInfo) => void;
  private rejectReady!: (err: Error) => void;
  private readonly sessions = new Map<number, SessionState>();
  private shuttingDown = false;
  private sshAgentRelay?: (io: RelayStreams) => void;

  /** The answers to a preamble's requests (AgentClientOptions.preamble), all of them. */
  readonly preambleDone: Promise<void> | undefined;

  constructor(io: Duplex, options: AgentClientOptions = {}) {
    this.readyPromise = new Promise<AgentInfo>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    // Marked handled here: callers that never wait for readiness must not crash the process.
    this.readyPromise.catch(() => undefined);
    this.conn = new Connection(io, 'host', { hello: (m) => this.onHello(m), event: (m) => this.onEvent(m) }, options);
    void this.conn.closed.then((reason) => {
      const err = reason ?? new ProtocolError('the connection was closed');
      this.rejectReady(err);
      for (const s of this.sessions.values()) s.reject(err);
      this.sessions.clear();
    });
    if (options.preamble) {
      // The hello and these requests went out already (encodePreamble): only their answers are ours.
      const answers = this.conn.adoptSentRequests(options.preamble);
      this.preambleDone = Promise.all(answers).then(() => undefined);
      this.preambleDone.catch(() => undefined);
    } else {
      this.conn.sendHello();
    }
  }

  /** Resolves with the agent's self-description once it has said it is ready. */
  waitReady(): Promise<AgentInfo> {
    return this.readyPromise;
  }

  /** Resolves when the connection ends: null for a close we asked for (close, shutdown). */
  get closed(): Promise<Error | null> {
    return this.conn.closed.then((reason) => (this.shuttingDown ? null : reason));
  }

  /** Round trip through the agent, in milliseconds. */
  async ping(): Promise<number> {
    await this.readyPromise;
    const start = process.hrtime.bigint();
    await this.conn.request('ping', {});
    return Number(process.hrtime.bigint() - start) / 1e6;
  }

  async setTime(epochMs: number = Date.now()): Promise<void> {
    await this.readyPromise;
    await this.conn.request('setTime', { epochMs: Math.round(epochMs) });
  }

  /** Asks the agent to warm up what restored VMs will need first (before a boot snapshot is saved). */
  async prepareSnapshot(): Promise<void> {
    await this.readyPromise;
    await this.conn.request('prepareSnapshot', {});
  }

  /**
   * Gives the guest kernel's RNG fresh entropy and makes it reseed now: VMs restored from one
   * snapshot would otherwise share its random state.
   */
  async reseed(entropy: Buffer): Promise<void> {
    await this.readyPromise;
    await this.conn.request('reseed', { entropy: entropy.toString('base64') });
  }

  /** Unmounts (false) or mounts again (true) the run's 9p volumes, around a machine snapshot. */
  async shares(spec: { mounted: boolean }): Promise<void> {
    await this.readyPromise;
    await this.conn.request('shares', spec);
  }

  /** Gives a copy restored from a machine snapshot its own hostname. */
  async identity(spec: { hostname: string }): Promise<void> {
    await this.readyPromise;
    await this.conn.request('identity', spec);
  }

  /**
   * Builds only the guest root (image overlay, API mounts), nothing of a run: done before a boot
   * snapshot is saved, so a restored VM's `setup` just configures the run.
   */
  async setupRoot(spec: RootSetupSpec): Promise<void> {
    await this.readyPromise;
    await this.conn.request('setupRoot', { ...rootSetupOf(spec) });
  }

  /** Prepares the guest root (image overlay, mounts, volumes, hostname). Once, before exec. */
  async setup(spec: SetupSpec): Promise<void> {
    await this.readyPromise;
    await this.conn.request('setup', { ...spec });
  }

  async exec(opts: ExecOptions): Promise<ExecSession> {
    if (opts.argv.length === 0) throw new TypeError('exec: argv must name a program');
    await this.readyPromise;
    const stdin = opts.stdin ? this.conn.openOutbound() : null;
    const stdout = this.conn.openInbound();
    const stderr = this.conn.openInbound();
    const args = encodeExec(opts, { stdin: stdin?.id ?? null, stdout: stdout.id, stderr: stderr.id });
    // The exec request's id names the session; registering it before the request goes out
    // means an exit event right behind the response always finds it.
    let session = 0;
    let settle!: SessionState;
    const exit = new Promise<ExitStatus>((resolve, reject) => (settle = { resolve, reject }));
    exit.catch(() => undefined);
    let result;
    try {
      result = await this.conn.request('exec', args, (id) => {
        session = id;
        this.sessions.set(id, settle);
      });
    } catch (err) {
      this.sessions.delete(session);
      stdin?.destroy();
      stdout.destroy();
      stderr.destroy();
      throw err;
    }
    let pid: number;
    try {
      pid = parseExecResult(result).pid;
    } catch (err) {
      throw this.violation(err);
    }
    return {
      pid,
      stdin: stdin ?? discardingWritable(),
      stdout,
      stderr,
      exit,
      resize: async (rows, cols) => {
        await this.conn.request('resize', { session, rows, cols });
      },
      signal: async (name) => {
        await this.conn.request('signal', { session, signal: name });
      },
    };
  }

  /**
   * Streams `source` (exactly `opts.size` bytes) to a guest file. Resolves once the agent has
   * synced and renamed it into place; on any failure the destination is unchanged.
   */
  async putFile(opts: PutFileOptions, source: Readable): Promise<PutFileResult> {
    await this.readyPromise;
    const out = this.conn.openOutbound();
    const request = this.conn.request('putFile', encodePutFile(opts, out.id));
    // A failed request (refused up front, or the connection lost) stops the pump.
    request.catch(() => out.destroy());
    // A failing source fails the request (the stream is reset); the error is reported there,
    // not as an unhandled 'error' event on the stream.
    out.on('error', () => undefined);
    source.pipe(out);
    source.once('error', (err) => out.destroy(err));
    try {
      return parsePutFileResult(await request);
    } catch (err) {
      // The source is ours to finish: nothing will read the rest of it.
      source.unpipe(out);
      source.destroy();
      if (err instanceof SchemaError) throw this.violation(err);
      throw err;
    }
  }

  /** Like putFile, with the bytes taken from a file already in the guest (`opts.source`). */
  async installFile(opts: InstallFileOptions): Promise<PutFileResult> {
    await this.readyPromise;
    const result = await this.conn.request('installFile', encodeInstallFile(opts));
    try {
      return parsePutFileResult(result);
    } catch (err) {
      throw this.violation(err);
    }
  }

  /** Sends a directory as a tar stream (one top-level entry, `opts.name`); see PutTreeOptions. */
  async putTree(opts: PutTreeOptions, source: Readable): Promise<TreeResult> {
    await this.readyPromise;
    const out = this.conn.openOutbound();
    const request = this.conn.request('putTree', encodePutTree(opts, out.id));
    request.catch(() => out.destroy());
    // A failing source fails the request (the stream is reset); the error is reported there,
    // not as an unhandled 'error' event on the stream.
    out.on('error', () => undefined);
    source.pipe(out);
    source.once('error', (err) => out.destroy(err));
    try {
      return parseTreeResult(await request);
    } catch (err) {
      // The source is ours to finish: nothing will read the rest of it.
      source.unpipe(out);
      source.destroy();
      if (err instanceof SchemaError) throw this.violation(err);
      throw err;
    }
  }

  async installTree(opts: InstallTreeOptions): Promise<TreeResult> {
    await this.readyPromise;
    const result = await this.conn.request('installTree', encodeInstallTree(opts));
    try {
      return parseTreeResult(result);
    } catch (err) {
      throw this.violation(err);
    }
  }

  /**
   * Receives a guest directory as a tar stream. `data` carries it; `done` settles once the agent
   * has sent all of it (rejects if it failed part-way, e.g. past `maxBytes`).
   */
  async getTree(opts: GetTreeOptions): Promise<{ data: Readable; done: Promise<{ bytes: number }> }> {
    await this.readyPromise;
    const data = this.conn.openInbound();
    const done = this.conn.request('getTree', encodeGetTree(opts, data.id)).then((r) => {
      const f = parseTreeResultBytes(r);
      return { bytes: f };
    });
    done.catch(() => undefined);
    return { data, done };
  }

  /**
   * Opens a guest file for reading. The agent refuses files of `maxBytes` or more (and anything
   * but a regular file) before sending a byte; the data stream ends after `size` bytes.
   */
  async getFile(opts: GetFileOptions): Promise<FileInfo & { data: Readable }> {
    await this.readyPromise;
    const data = this.conn.openInbound();
    try {
      const info = parseFileInfo(await this.conn.request('getFile', encodeGetFile(opts, data.id)));
      return { ...info, data };
    } catch (err) {
      data.destroy();
      if (err instanceof SchemaError) throw this.violation(err);
      throw err;
    }
  }

  /** Asks the agent to sync and power off; resolves when it acknowledged (or the VM is gone). */
  async shutdown(): Promise<void> {
    await this.readyPromise;
    this.shuttingDown = true;
    try {
      await this.conn.request('shutdown', {});
    } catch (err) {
      // The acknowledgement can lose the race with the VM ending; a closed channel is success here.
      if (!(err instanceof ProtocolError) || !this.conn.isClosed) throw err;
    }
  }

  /**
   * Serves the guest's SSH agent socket (set up with `SetupSpec.sshAgent`): `handler` gets each
   * guest connection's streams and must end `output` when done. Without a handler, guest
   * connections are refused (both streams ended at once).
   */
  serveSshAgent(handler: (io: RelayStreams) => void): void {
    this.sshAgentRelay = handler;
  }

  /** Drops the connection (the VM keeps running). */
  close(): void {
    this.shuttingDown = true;
    this.conn.close();
  }

  private onHello(msg: HelloMessage): void {
    if (msg.version !== PROTOCOL_VERSION) {
      throw new ProtocolError(
        `the agent speaks protocol version ${msg.version}, this smolvm speaks version ${PROTOCOL_VERSION}`,
        {
          remedy: 'rebuild the agent image (delete the agent/ directory under the smolvm cache) or update smolvm',
        },
      );
    }
    if (msg.ready) this.resolveReady(msg.agent ?? {});
  }

  private onEvent(msg: EventMessage): void {
    switch (msg.op) {
      case 'ready':
        if (!this.conn.peer) throw new ProtocolError('ready before hello');
        this.resolveReady(this.conn.peer.agent ?? {});
        return;
      case 'exit': {
        let exit;
        try {
          exit = parseExitEvent(msg.args);
        } catch (err) {
          throw this.violation(err);
        }
        const s = this.sessions.get(exit.session);
        if (!s) throw new ProtocolError(`exit for unknown session ${exit.session}`);
        this.sessions.delete(exit.session);
        if (exit.error !== undefined) s.reject(new SessionLostError(exit.error));
        else s.resolve({ code: exit.code, signal: exit.signal });
        return;
      }
      case 'sshAgentConnect': {
        let ids;
        try {
          ids = parseRelayConnect(msg.args, msg.op);
        } catch (err) {
          throw this.violation(err);
        }
        const io: RelayStreams = {
          input: this.conn.acceptInbound(ids.toHost),
          output: this.conn.acceptOutbound(ids.fromHost),
        };
        if (this.sshAgentRelay) this.sshAgentRelay(io);
        else {
          io.input.destroy();
          io.output.end();
        }
        return;
      }
      default:
        throw new ProtocolError(`unknown event '${msg.op}'`);
    }
  }

  private violation(err: unknown): ProtocolError {
    const e =
      err instanceof SchemaError
        ? new ProtocolError(`malformed message: ${err.message}`)
        : new ProtocolError(String(err));
    this.conn.fail(e);
    return e;
  }
}

function parseTreeResultBytes(result: unknown): number {
  const bytes = (result as { bytes?: unknown } | null)?.bytes;
  if (typeof bytes !== 'number' || !Number.isInteger(bytes) || bytes < 0)
    throw new ProtocolError('malformed message: getTree result: bytes must be a count');
  return bytes;
}

function discardingWritable(): Writable {
  return new Writable({ write: (_chunk, _enc, cb) => cb() });
}
