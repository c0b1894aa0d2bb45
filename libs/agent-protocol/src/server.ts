// Agent side: decodes host requests, hands them to the handlers the guest agent implements
// and speaks the protocol back (responses, exit events, stream frames). Knows nothing about
// processes or mounts itself, so it runs anywhere a Duplex does (tests use socket pairs).
import type { Duplex, Readable, Writable } from 'node:stream';
import { AgentRequestError, type ErrorCode } from './errors';
import { Connection, type ConnectionOptions } from './connection';
import type { AgentInfo, EventMessage, RequestMessage } from './messages';
import {
  parseExec,
  parseIdentity,
  parseReseed,
  parseShares,
  parseResize,
  parseSetTime,
  parseSetup,
  parseSetupRoot,
  parseSignal,
  type ExecRequest,
  type ExitStatus,
  type RootSetupSpec,
  type SetupSpec,
} from './ops';
import { Fields, SchemaError, type Json } from './schema';
import type { InboundStream, OutboundStream } from './streams';
import {
  parseGetFile,
  parseGetTree,
  parseInstallFile,
  parseInstallTree,
  parsePutFile,
  parsePutTree,
  type FileInfo,
  type GetFileRequest,
  type GetTreeRequest,
  type InstallFileOptions,
  type InstallTreeOptions,
  type PutFileRequest,
  type PutFileResult,
  type PutTreeRequest,
  type TreeResult,
} from './files';

export interface ExecIo {
  /** Null unless the host asked to keep stdin open. */
  stdin: Readable | null;
  /** The handler must end both once the process's output is complete. */
  stdout: OutboundStream;
  stderr: OutboundStream;
}

export interface ExecProcess {
  pid: number;
  /** Settles when the process has exited. The exit event goes out once stdout/stderr ended too. */
  exited: Promise<ExitStatus>;
  /** Throws AgentRequestError('bad-request') for a signal name it does not know. */
  signal(name: string): void;
  resize(rows: number, cols: number): void;
}

export interface AgentHandlers {
  exec(req: ExecRequest, io: ExecIo): Promise<ExecProcess>;
  /**
   * Builds the guest root and nothing of a run (before a boot snapshot). A later `setup` with
   * the same root fields then only configures the run; with other root fields it is refused.
   */
  setupRoot?(spec: RootSetupSpec): Promise<void>;
  setup?(spec: SetupSpec): Promise<void>;
  setTime?(epochMs: number): Promise<void> | void;
  /**
   * Before a boot snapshot is saved: load and run once what the first requests after a restore
   * need, so no restored VM pays for it. Must not touch the guest root (nothing user-specific).
   */
  prepareSnapshot?(): Promise<void>;
  /** Mixes host entropy into the kernel's pool and reseeds its RNG at once (after a snapshot restore). */
  reseed?(entropy: Buffer): Promise<void> | void;
  /** A restored copy of a running machine takes its own hostname (snapshot forks). */
  identity?(spec: { hostname: string }): Promise<void> | void;
  /**
   * Unmounts (false) or mounts again (true) the run's 9p volumes: QEMU cannot save a VM while a
   * share is mounted, so a machine snapshot detaches them for the save. Unmounting fails (and
   * leaves them mounted) while a process uses one.
   */
  shares?(spec: { mounted: boolean }): Promise<void> | void;
  /**
   * Writes exactly `req.size` bytes from `data` to `req.path`, atomically: the destination
   * changes only once the whole file is written and synced. Rejects (and leaves nothing) if the
   * stream ends short or runs long.
   */
  putFile?(req: PutFileRequest, data: Readable): Promise<PutFileResult>;
  /** putFile with the bytes read from `req.source`, a file in the guest. */
  installFile?(req: InstallFileOptions): Promise<PutFileResult>;
  /** Extracts the tar stream `data` as `req.name` under `req.path`; nothing appears unless all of it did. */
  putTree?(req: PutTreeRequest, data: Readable): Promise<TreeResult>;
  /** putTree from a tar file already in the guest. */
  installTree?(req: InstallTreeOptions): Promise<TreeResult>;
  /** Streams the directory as tar into `out` (ending it); resolves when the stream is complete. */
  getTree?(req: GetTreeRequest, out: OutboundStream): Promise<{ bytes: number }>;
  /** Checks the file, starts streaming it into `out` (ending it) and returns its size and mode. */
  getFile?(req: GetFileRequest, out: OutboundStream): Promise<FileInfo>;
  /** Replaces the built-in answer to `ping`: a relay checks what it relays to. */
  ping?(): Promise<void>;
  /** Runs before the shutdown acknowledgement: flush what must survive. */
  prepareShutdown?(): Promise<void>;
  /** Runs once the acknowledgement has been written to the channel. */
  powerOff?(): void;
}

export interface AgentServerOptions extends ConnectionOptions {
  /** Facts sent in the hello (versions, boot timings). */
  agent?: AgentInfo;
}

export class AgentServer {
  private readonly conn: Connection;
  private readonly sessions = new Map<number, ExecProcess>();

  constructor(
    io: Duplex,
    private readonly handlers: AgentHandlers,
    private readonly options: AgentServerOptions = {},
  ) {
    this.conn = new Connection(
      io,
      'agent',
      {
        // The host's hello only carries its window and frame limit; the host judges versions.
        hello: () => undefined,
        request: (m) => void this.onRequest(m),
        event: (m: EventMessage) => {
          throw new SchemaError(`unknown event '${m.op}'`);
        },
      },
      options,
    );
  }

  /** Sends the hello. With ready=false, call markReady() when requests can be served. */
  announce(ready = true): void {
    this.conn.sendHello({ ready, ...(this.options.agent ? { agent: this.options.agent } : {}) });
  }

  markReady(): void {
    this.conn.sendEvent('ready', {});
  }

  /**
   * A guest client of a host-served relay (the SSH agent) connected: allocates a stream each way
   * and announces them with event `op`. The host ends `fromHost` (and closes `toHost`) if it
   * cannot serve the relay.
   */
  openRelay(op: 'sshAgentConnect'): { toHost: OutboundStream; fromHost: InboundStream } {
    const toHost = this.conn.openOutbound();
    const fromHost = this.conn.openInbound();
    this.conn.sendEvent(op, { toHost: toHost.id, fromHost: fromHost.id });
    return { toHost, fromHost };
  }

  get closed(): Promise<Error | null> {
    return this.conn.closed;
  }

  close(): void {
    this.conn.close();
  }

  private async onRequest(msg: RequestMessage): Promise<void> {
    try {
      const result = await this.handle(msg);
      if (msg.op === 'shutdown') return;
      this.conn.respond(msg.id, result);
    } catch (err) {
      const { code, message } = describe(
        err,
        msg.op === 'setup' || msg.op === 'setupRoot' ? 'setup-failed' : 'internal',
      );
      this.conn.respondError(msg.id, code, message);
    }
  }

  private async handle(msg: RequestMessage): Promise<Json> {
    switch (msg.op) {
      case 'ping':
        await this.handlers.ping?.();
        return {};
      case 'putFile': {
        if (!this.handlers.putFile)
          throw new AgentRequestError('putFile', 'unsupported', 'this agent cannot receive files');
        // The stream is taken first, so a refused request still closes it cleanly: the host may
        // already be sending on it.
        const data = this.conn.acceptInbound(new Fields(msg.args, 'putFile').int('stream', 1));
        try {
          return { ...(await this.handlers.putFile(parsePutFile(msg.args), data)) };
        } finally {
          data.destroy();
        }
      }
      case 'installFile': {
        if (!this.handlers.installFile)
          throw new AgentRequestError('installFile', 'unsupported', 'this agent cannot install files');
        return { ...(await this.handlers.installFile(parseInstallFile(msg.args))) };
      }
      case 'putTree': {
        if (!this.handlers.putTree)
          throw new AgentRequestError('putTree', 'unsupported', 'this agent cannot receive directories');
        const data = this.conn.acceptInbound(new Fields(msg.args, 'putTree').int('stream', 1));
        try {
          return { ...(await this.handlers.putTree(parsePutTree(msg.args), data)) };
        } finally {
          data.destroy();
        }
      }
      case 'installTree': {
        if (!this.handlers.installTree)
          throw new AgentRequestError('installTree', 'unsupported', 'this agent cannot install directories');
        return { ...(await this.handlers.installTree(parseInstallTree(msg.args))) };
      }
      case 'getTree': {
        if (!this.handlers.getTree)
          throw new AgentRequestError('getTree', 'unsupported', 'this agent cannot send directories');
        const out = this.conn.acceptOutbound(new Fields(msg.args, 'getTree').int('stream', 1));
        try {
          return { ...(await this.handlers.getTree(parseGetTree(msg.args), out)) };
        } catch (err) {
          out.destroy();
          throw err;
        }
      }
      case 'getFile': {
        if (!this.handlers.getFile)
          throw new AgentRequestError('getFile', 'unsupported', 'this agent cannot send files');
        const out = this.conn.acceptOutbound(new Fields(msg.args, 'getFile').int('stream', 1));
        try {
          return { ...(await this.handlers.getFile(parseGetFile(msg.args), out)) };
        } catch (err) {
          out.end();
          throw err;
        }
      }
      case 'exec':
        return this.exec(msg.id, msg.args);
      case 'signal': {
        const { session, signal } = parseSignal(msg.args);
        this.session(session).signal(signal);
        return {};
      }
      case 'resize': {
        const { session, rows, cols } = parseResize(msg.args);
        this.session(session).resize(rows, cols);
        return {};
      }
      case 'setTime': {
        if (!this.handlers.setTime)
          throw new AgentRequestError('setTime', 'unsupported', 'this agent cannot set the clock');
        await this.handlers.setTime(parseSetTime(msg.args).epochMs);
        return {};
      }
      case 'prepareSnapshot':
        if (!this.handlers.prepareSnapshot)
          throw new AgentRequestError('prepareSnapshot', 'unsupported', 'this agent cannot prepare for a snapshot');
        await this.handlers.prepareSnapshot();
        return {};
      case 'reseed': {
        if (!this.handlers.reseed)
          throw new AgentRequestError('reseed', 'unsupported', 'this agent cannot reseed the kernel RNG');
        await this.handlers.reseed(parseReseed(msg.args).entropy);
        return {};
      }
      case 'identity': {
        if (!this.handlers.identity)
          throw new AgentRequestError('identity', 'unsupported', 'this agent cannot change its identity');
        await this.handlers.identity(parseIdentity(msg.args));
        return {};
      }
      case 'shares': {
        if (!this.handlers.shares)
          throw new AgentRequestError('shares', 'unsupported', 'this agent cannot detach its shares');
        await this.handlers.shares(parseShares(msg.args));
        return {};
      }
      case 'setupRoot': {
        if (!this.handlers.setupRoot)
          throw new AgentRequestError('setupRoot', 'unsupported', 'this agent cannot set up a root');
        await this.handlers.setupRoot(parseSetupRoot(msg.args));
        return {};
      }
      case 'setup': {
        if (!this.handlers.setup)
          throw new AgentRequestError('setup', 'unsupported', 'this agent cannot set up a root');
        await this.handlers.setup(parseSetup(msg.args));
        return {};
      }
      case 'shutdown':
        await this.handlers.prepareShutdown?.();
        this.conn.respond(msg.id, {});
        await this.conn.flush();
        this.handlers.powerOff?.();
        return {};
      default:
        throw new AgentRequestError(msg.op, 'unknown-op', `unknown request '${msg.op}'`);
    }
  }

  private session(id: number): ExecProcess {
    const proc = this.sessions.get(id);
    if (!proc) throw new AgentRequestError('exec', 'no-such-session', `no running process for session ${id}`);
    return proc;
  }

  private async exec(session: number, args: Json): Promise<Json> {
    const req = parseExec(args);
    const stdin = req.streams.stdin !== null ? this.conn.acceptInbound(req.streams.stdin) : null;
    const stdout = this.conn.acceptOutbound(req.streams.stdout);
    const stderr = this.conn.acceptOutbound(req.streams.stderr);
    let proc: ExecProcess;
    try {
      proc = await this.handlers.exec(req, { stdin, stdout, stderr });
    } catch (err) {
      stdin?.destroy();
      stdout.end();
      stderr.end();
      throw err;
    }
    this.sessions.set(session, proc);
    void proc.exited
      .then(async (status) => {
        await Promise.all([done(stdout), done(stderr)]);
        this.conn.sendEvent('exit', { session, code: status.code, signal: status.signal });
      })
      .catch((err: unknown) => {
        stdout.end();
        stderr.end();
        this.conn.sendEvent('exit', { session, code: 255, signal: null, error: String(err) });
      })
      .finally(() => this.sessions.delete(session));
    return { pid: proc.pid };
  }
}

function done(stream: Writable): Promise<void> {
  if (stream.writableFinished || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('finish', resolve);
    stream.once('close', resolve);
  });
}

function describe(err: unknown, fallback: ErrorCode): { code: ErrorCode; message: string } {
  if (err instanceof AgentRequestError) return { code: err.code, message: err.message.replace(/^agent [^:]+: /, '') };
  if (err instanceof SchemaError) return { code: 'bad-request', message: err.message };
  return { code: fallback, message: err instanceof Error ? err.message : String(err) };
}
