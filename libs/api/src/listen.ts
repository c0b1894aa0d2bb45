// Where `smolvm serve start` listens, and who may talk to it. Closed by default: loopback only
// unless a bearer token is configured; a unix socket is created 0600 (never a moment wider).
import fs from 'node:fs';
import net from 'node:net';
import { UsageError } from '@smolvm/common';

export interface ListenAddress {
  host: string;
  port: number;
}

export const DEFAULT_LISTEN = '127.0.0.1:8080';
const TOKEN_MIN = 16;
const TOKEN_MAX = 4096;

/** `ADDR:PORT` (IPv6 as `[::1]:8080`). */
export function parseListen(value: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  const host = m ? (m[1] ?? m[2]) : '';
  if (
    !m ||
    port > 65535 ||
    (m[1] !== undefined && net.isIPv6(host) === false) ||
    (m[2] !== undefined && !net.isIPv4(host) && host !== 'localhost')
  ) {
    throw new UsageError(`--listen ${value} is not ADDR:PORT`, {
      remedy:
        'give an IP address and a port, e.g. --listen 127.0.0.1:8080 or --listen [::1]:8080 (0.0.0.0:8080 needs --token-file)',
    });
  }
  return { host, port };
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return net.isIPv4(host) && host.startsWith('127.');
}

/** A non-loopback listener is refused unless requests must carry a token. */
export function assertListenAllowed(address: ListenAddress, hasToken: boolean): void {
  if (!isLoopback(address.host) && !hasToken) {
    throw new UsageError(
      `--listen ${address.host}:${address.port} would let anyone who can reach this host run commands in your machines`,
      {
        remedy:
          'give --token-file FILE (a secret of 16+ characters, mode 0600) to require a bearer token, or listen on 127.0.0.1',
      },
    );
  }
}

/** The bearer token: a file only its owner can read, holding one secret of 16-4096 characters. */
export function readTokenFile(file: string): string {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    throw new UsageError(
      `cannot read --token-file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { remedy: 'name an existing regular file (not a symlink) holding the token' },
    );
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile())
      throw new UsageError(`--token-file ${file} is not a regular file`, { remedy: 'name a file holding the token' });
    if ((st.mode & 0o077) !== 0)
      throw new UsageError(`--token-file ${file} can be read by other users (mode ${(st.mode & 0o777).toString(8)})`, {
        remedy: `chmod 600 ${file}`,
      });
    if (st.size > TOKEN_MAX + 2)
      throw new UsageError(`--token-file ${file} is larger than a token (${st.size} bytes)`, {
        remedy: `put only the token in it (${TOKEN_MIN}-${TOKEN_MAX} characters)`,
      });
    const token = fs.readFileSync(fd, 'utf8').trim();
    if (token.length < TOKEN_MIN || /\s/.test(token)) {
      throw new UsageError(
        `--token-file ${file} must hold one token of at least ${TOKEN_MIN} characters without spaces`,
        { remedy: `e.g. head -c 32 /dev/urandom | base64 > ${file}; chmod 600 ${file}` },
      );
    }
    return token;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Makes room for a unix socket at `file`: a socket nobody answers on (left by a killed server)
 * is removed; anything else there is refused.
 */
export async function prepareSocketPath(file: string): Promise<void> {
  const st = fs.lstatSync(file, { throwIfNoEntry: false });
  if (!st) return;
  if (!st.isSocket())
    throw new UsageError(`--socket ${file} exists and is not a socket`, { remedy: 'name a new path' });
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(file);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live)
    throw new UsageError(`--socket ${file} is in use by another server`, {
      remedy: 'stop it first, or name another path',
    });
  fs.rmSync(file, { force: true });
}

/**
 * Listens on a unix socket that is 0600 from the moment it exists (umask while binding), and
 * hands each connection to `onConnection`.
 */
export async function listenUnixSocket(file: string, onConnection: (socket: net.Socket) => void): Promise<net.Server> {
  await prepareSocketPath(file);
  const server = net.createServer(onConnection);
  const old = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(file, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(old);
  }
  fs.chmodSync(file, 0o600);
  return server;
}
