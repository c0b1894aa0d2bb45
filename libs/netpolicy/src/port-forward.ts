// `-p HOST:GUEST`: listeners on the host's loopback whose connections become gateway-initiated
// TCP connections into the guest. Bound before the VM boots, so a busy port fails fast.
import net from 'node:net';
import { ConflictError, SmolvmError } from '@smolvm/common';
import type { PortMapping } from '@smolvm/config';
import type { Gateway } from './gateway';

/** A mapping as bound: the real host port, and the address it listens on. */
export interface BoundPort extends PortMapping {
  address: string;
}

/** Connections that arrive before the gateway is attached wait, up to this many. */
const MAX_WAITING = 128;

export class PortForwards {
  private gateway?: Gateway;
  private waiting: Array<{ socket: net.Socket; guestPort: number }> = [];
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly servers: net.Server[],
    readonly bound: BoundPort[],
  ) {}

  /** @internal Built by listenPortForwards. */
  static create(servers: net.Server[], bound: BoundPort[]): PortForwards {
    const forwards = new PortForwards(servers, bound);
    servers.forEach((server, i) => server.on('connection', (socket) => forwards.accept(socket, bound[i].guestPort)));
    return forwards;
  }

  /** Starts relaying into the gateway (connections that waited go first). */
  attach(gateway: Gateway): void {
    this.gateway = gateway;
    for (const w of this.waiting.splice(0)) gateway.forward(w.socket, w.guestPort);
  }

  private accept(socket: net.Socket, guestPort: number): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    if (this.gateway) return this.gateway.forward(socket, guestPort);
    if (this.waiting.length >= MAX_WAITING) return void socket.destroy();
    socket.pause();
    socket.on('error', () => undefined);
    this.waiting.push({ socket, guestPort });
  }

  async close(): Promise<void> {
    this.waiting = [];
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

/**
 * Binds every host port first (all or none): a busy port is a ConflictError naming it, raised
 * before anything boots. A hostPort of 0 picks a free port (see PortForwards.bound).
 */
export async function listenPortForwards(
  mappings: readonly PortMapping[],
  options: { address?: string } = {},
): Promise<PortForwards> {
  const address = options.address ?? '127.0.0.1';
  const servers: net.Server[] = [];
  const bound: BoundPort[] = [];
  const seen = new Set<number>();
  try {
    for (const m of mappings) {
      if (m.hostPort !== 0 && seen.has(m.hostPort)) {
        throw new ConflictError(`host port ${m.hostPort} is forwarded twice`, {
          remedy: 'give each -p mapping its own host port',
        });
      }
      seen.add(m.hostPort);
      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err: NodeJS.ErrnoException) => reject(listenError(err, address, m)));
        server.listen({ host: address, port: m.hostPort, exclusive: true }, () => resolve());
      });
      servers.push(server);
      bound.push({ address, hostPort: (server.address() as net.AddressInfo).port, guestPort: m.guestPort });
    }
  } catch (err) {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    throw err;
  }
  return PortForwards.create(servers, bound);
}

function listenError(err: NodeJS.ErrnoException, address: string, m: PortMapping): SmolvmError {
  const where = `${address}:${m.hostPort}`;
  if (err.code === 'EADDRINUSE') {
    return new ConflictError(
      `cannot forward host port ${m.hostPort} to guest port ${m.guestPort}: ${where} is already in use`,
      {
        cause: err,
        remedy: `stop the program listening on ${where}, or pick another host port (-p OTHER:${m.guestPort})`,
      },
    );
  }
  if (err.code === 'EACCES') {
    return new SmolvmError(`cannot forward host port ${m.hostPort}: permission denied`, {
      cause: err,
      remedy: `use a host port above 1023 (-p 8${String(m.hostPort).padStart(3, '0')}:${m.guestPort}) or allow binding low ports`,
    });
  }
  return new SmolvmError(`cannot listen on ${where} for port forwarding: ${err.message}`, {
    cause: err,
    remedy: 'check the host port number and try again',
  });
}
