// A QMP client: JSON objects, one per line, over a stream socket. After the greeting it
// negotiates capabilities; then commands are matched to replies by id, and events (SHUTDOWN,
// STOP, RESUME...) go to listeners.
import net from 'node:net';
import { SmolvmError } from '@smolvm/common';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export interface QmpVersion {
  qemu: { major: number; minor: number; micro: number };
  package: string;
}

/** QEMU answered a command with an error (class: GenericError, CommandNotFound...). */
export class QmpError extends SmolvmError {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    description: string,
  ) {
    super(`QMP ${command}: ${description} (${errorClass})`);
  }
}

/** The connection ended, or an answer did not come in time. */
export class QmpConnectionError extends SmolvmError {}

type QmpMessage = {
  QMP?: { version: QmpVersion };
  return?: unknown;
  error?: { class: string; desc: string };
  event?: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
  id?: number;
};

interface Pending {
  command: string;
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer?: NodeJS.Timeout;
}

export class QmpClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly eventListeners = new Set<(event: QmpEvent) => void>();
  private buffered = '';
  private greetingWaiter?: { resolve(v: QmpVersion): void; reject(e: Error): void };
  private ended = false;
  version?: QmpVersion;
  /** Resolves when the connection is gone, whoever closed it. */
  readonly closed: Promise<void>;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', () => undefined); // 'close' follows and reports it
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.fail(new QmpConnectionError('QMP connection closed'));
        resolve();
      }),
    );
  }

  /** Takes over a connected socket, reads the greeting and leaves negotiation mode. */
  static async negotiate(socket: net.Socket, timeoutMs = 10_000): Promise<QmpClient> {
    const client = new QmpClient(socket);
    const greeting = new Promise<QmpVersion>((resolve, reject) => (client.greetingWaiter = { resolve, reject }));
    client.version = await withTimeout(greeting, timeoutMs, 'QMP greeting').catch((err: Error) => {
      client.close();
      throw err;
    });
    await client.execute('qmp_capabilities', undefined, { timeoutMs });
    return client;
  }

  /** Connects to a QMP server socket (`-qmp unix:PATH,server=on`). */
  static async connect(socketPath: string, timeoutMs = 10_000): Promise<QmpClient> {
    const socket = net.createConnection(socketPath);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', (err) =>
        reject(new QmpConnectionError(`cannot connect to QMP socket ${socketPath}: ${err.message}`)),
      );
    });
    return QmpClient.negotiate(socket, timeoutMs);
  }

  execute(command: string, args?: Record<string, unknown>, options: { timeoutMs?: number } = {}): Promise<unknown> {
    if (this.ended) return Promise.reject(new QmpConnectionError(`QMP ${command}: connection closed`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const entry: Pending = { command, resolve, reject };
      if (options.timeoutMs !== undefined) {
        entry.timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new QmpConnectionError(`QMP ${command}: no answer within ${options.timeoutMs} ms`));
        }, options.timeoutMs);
      }
      this.pending.set(id, entry);
      this.socket.write(
        JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id }) + '\n',
      );
    });
  }

  /** Subscribes to events; returns the unsubscribe function. */
  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    this.buffered += chunk;
    let nl: number;
    while ((nl = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, nl).trim();
      this.buffered = this.buffered.slice(nl + 1);
      if (line) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let msg: QmpMessage;
    try {
      msg = JSON.parse(line) as QmpMessage;
    } catch {
      this.fail(new QmpConnectionError(`QMP sent something that is not JSON: ${line.slice(0, 200)}`));
      this.close();
      return;
    }
    if (msg.QMP) {
      this.greetingWaiter?.resolve(msg.QMP.version);
      this.greetingWaiter = undefined;
    } else if (msg.event !== undefined) {
      const event: QmpEvent = { event: msg.event, data: msg.data, timestamp: msg.timestamp };
      for (const listener of this.eventListeners) listener(event);
    } else if (typeof msg.id === 'number') {
      const entry = this.pending.get(msg.id);
      if (!entry) return; // answered after its timeout
      this.pending.delete(msg.id);
      clearTimeout(entry.timer);
      if (msg.error) entry.reject(new QmpError(entry.command, msg.error.class, msg.error.desc));
      else entry.resolve(msg.return);
    }
  }

  private fail(err: Error): void {
    this.ended = true;
    this.greetingWaiter?.reject(err);
    this.greetingWaiter = undefined;
    for (const entry of this.pending.values()) {
      clearTimeout(entry.timer);
      entry.reject(new QmpConnectionError(`QMP ${entry.command}: ${err.message}`));
    }
    this.pending.clear();
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new QmpConnectionError(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
