// Host side of the conformance guest's line protocol. Listens before the VM starts, as the real
// agent connection does (docs/architecture.md#agent-protocol): QEMU connects to it as a client.
import fs from 'node:fs';
import net from 'node:net';

export interface CommandResult {
  output: string[];
  code: number;
}

export class LineAgent {
  private socket?: net.Socket;
  private buffered = '';
  private lines: string[] = [];
  private waiter?: () => void;
  private closed = false;
  readonly connected: Promise<void>;

  private constructor(
    readonly socketPath: string,
    private readonly server: net.Server,
  ) {
    this.connected = new Promise((resolve) => {
      server.once('connection', (socket) => {
        this.socket = socket;
        socket.setEncoding('utf8');
        socket.on('data', (chunk: string) => this.onData(chunk));
        socket.on('close', () => {
          this.closed = true;
          this.waiter?.();
        });
        socket.on('error', () => undefined);
        resolve();
      });
    });
  }

  static async listen(socketPath: string): Promise<LineAgent> {
    fs.rmSync(socketPath, { force: true });
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    return new LineAgent(socketPath, server);
  }

  /** Resolves on the guest's READY line; rejects if `abort` settles first or time runs out. */
  async ready(timeoutMs: number, abort?: Promise<unknown>): Promise<void> {
    const line = await this.nextLine(timeoutMs, abort);
    if (line !== 'READY') throw new Error(`expected READY from the guest, got ${JSON.stringify(line)}`);
  }

  async run(command: string, timeoutMs = 30_000): Promise<CommandResult> {
    this.send(command);
    const output: string[] = [];
    for (;;) {
      const line = await this.nextLine(timeoutMs);
      if (line.startsWith('OUT ')) output.push(line.slice(4));
      else if (line.startsWith('EXIT ')) return { output, code: Number(line.slice(5)) };
      else throw new Error(`unexpected line from the guest: ${JSON.stringify(line)}`);
    }
  }

  /** Sends a command without waiting for its answer (for commands that end the guest). */
  send(command: string): void {
    if (!this.socket) throw new Error('the guest is not connected');
    if (command.includes('\n')) throw new Error('one command per line');
    this.socket.write(command + '\n');
  }

  async close(): Promise<void> {
    this.socket?.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    fs.rmSync(this.socketPath, { force: true });
  }

  private onData(chunk: string): void {
    this.buffered += chunk;
    const parts = this.buffered.split('\n');
    this.buffered = parts.pop() ?? '';
    this.lines.push(...parts.map((l) => l.replace(/\r$/, '')));
    this.waiter?.();
  }

  private async nextLine(timeoutMs: number, abort?: Promise<unknown>): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let aborted = false;
    void abort?.then(() => {
      aborted = true;
      this.waiter?.();
    });
    while (this.lines.length === 0) {
      if (aborted) throw new Error('the VM ended before the guest answered');
      if (this.closed) throw new Error('the guest closed the channel');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no answer from the guest within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.lines.shift() ?? '';
  }
}
