// A running API server: TCP and/or unix socket listeners, and a graceful close (open streams end
// with a `shutdown` event, buffered requests finish or are cut with 503; machines keep running).
import { setMaxListeners } from 'node:events';
import fs from 'node:fs';
import type net from 'node:net';
import type { ImageReference } from '@smolvm/config';
import type { Machines } from '@smolvm/machines';
import type { BuiltBaseOptions, PreparedImage, PullEvent } from '@smolvm/oci';
import { assertListenAllowed, isLoopback, listenUnixSocket, type ListenAddress } from './listen';
import type { ApiContext } from './routes';
import { createApiServer } from './server';

export interface ServeOptions {
  machines: Machines;
  /** The image a bare machine is based on (the CLI's: config.toml's base, else the built Debian base). */
  base: () => Promise<PreparedImage>;
  /** Where the built base is besides the host's set-up (the single-file smolvm's own). */
  builtBase?: BuiltBaseOptions;
  /** TCP listener; a non-loopback address needs `token`. */
  listen?: ListenAddress;
  /** Unix socket listener (0600). */
  socket?: string;
  token?: string;
  onInternalError?: (err: unknown) => void;
}

export interface RunningServer {
  /** http://HOST:PORT of the TCP listener (the real port when 0 was asked for). */
  url?: string;
  socket?: string;
  /** Stops accepting, ends open streams with a `shutdown` event, waits for requests in flight. */
  close(): Promise<void>;
}

/** Image pulls of the API: the same store and verification as `smolvm image pull`. */
export async function pullImage(
  reference: string | ImageReference,
  onProgress?: (event: PullEvent) => void,
): Promise<PreparedImage> {
  const { ImageService } = await import('@smolvm/oci');
  const service = new ImageService();
  try {
    return await service.prepare(reference, { pull: 'missing', ...(onProgress ? { onProgress } : {}) });
  } finally {
    await service.close();
  }
}

export function apiContext(
  options: Pick<ServeOptions, 'machines' | 'base' | 'builtBase'>,
  shutdown: AbortSignal,
): ApiContext {
  return {
    machines: options.machines,
    pull: pullImage,
    base: options.base,
    ...(options.builtBase ? { builtBase: options.builtBase } : {}),
    shutdown,
  };
}

export async function startServe(options: ServeOptions): Promise<RunningServer> {
  if (!options.listen && !options.socket) throw new Error('startServe needs listen or socket');
  if (options.listen) assertListenAllowed(options.listen, options.token !== undefined);
  const shutdown = new AbortController();
  // Every open request listens for the shutdown: as many as there are requests, not a leak.
  setMaxListeners(0, shutdown.signal);
  const app = await createApiServer(apiContext(options, shutdown.signal), {
    ...(options.token !== undefined ? { token: options.token } : {}),
    loopbackHostOnly: options.token === undefined,
    ...(options.onInternalError ? { onInternalError: options.onInternalError } : {}),
  });
  let url: string | undefined;
  let unix: net.Server | undefined;
  try {
    // The HTTP server always listens (on TCP, or on the socket); an extra socket hands it its connections.
    if (options.listen) {
      await app.listen({ host: options.listen.host, port: options.listen.port });
      const address = app.server.address() as net.AddressInfo;
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      url = `http://${host}:${address.port}`;
      if (options.socket) unix = await listenUnixSocket(options.socket, (s) => app.server.emit('connection', s));
    } else if (options.socket) {
      unix = await listenUnixSocket(options.socket, (s) => app.server.emit('connection', s));
    }
  } catch (err) {
    await app.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    ...(url ? { url } : {}),
    ...(options.socket ? { socket: options.socket } : {}),
    close() {
      closing ??= (async () => {
        shutdown.abort();
        const unixClosed = unix ? new Promise<void>((resolve) => unix!.close(() => resolve())) : Promise.resolve();
        await app.close();
        await unixClosed;
        if (options.socket) fs.rmSync(options.socket, { force: true });
      })();
      return closing;
    },
  };
}

export { isLoopback };
