// Guest end of --ssh-agent: a unix socket in the guest root whose connections are relayed to the
// host's SSH agent over the agent protocol (event sshAgentConnect). Only agent-protocol bytes
// cross; the keys stay in the host's agent.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { InboundStream, OutboundStream } from '@smolvm/agent-protocol';

/** Opens a relay to the host; undefined while no host is connected. */
export type OpenRelay = () => { toHost: OutboundStream; fromHost: InboundStream } | undefined;

export function listenSshAgent(socketPath: string, openRelay: OpenRelay): Promise<net.Server> {
  fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o755 });
  // A persistent machine's overlay keeps the socket file of its previous boot.
  fs.rmSync(socketPath, { force: true });
  // Half-open: a client that shuts down its write side still gets the host's answer.
  const server = net.createServer({ allowHalfOpen: true }, (conn) => {
    const relay = openRelay();
    if (!relay) {
      conn.destroy();
      return;
    }
    const { toHost, fromHost } = relay;
    conn.pipe(toHost);
    fromHost.pipe(conn);
    const teardown = () => {
      toHost.destroy();
      fromHost.destroy();
      conn.destroy();
    };
    conn.once('close', teardown);
    conn.on('error', teardown);
    toHost.on('error', teardown);
    fromHost.on('error', teardown);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      // Usable by whichever user exec runs as (like a forwarded agent socket under sshd, but the
      // VM is the user's own).
      fs.chmodSync(socketPath, 0o666);
      resolve(server);
    });
  });
}
