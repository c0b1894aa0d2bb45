// Before a boot snapshot is saved: run what restored VMs run first, so they find it done. Under
// TCG every code path a restored guest runs for the first time costs translation, and V8 adds
// compiling, shaping objects and collecting garbage on top; the snapshot keeps the heap, so what
// V8 did here is not done again after a restore.
import net from 'node:net';
import { AgentClient, AgentServer, type AgentHandlers, type SetupSpec } from '@smolvm/agent-protocol';
import { planSetup } from './setup-plan';

/**
 * A setup like a restored machine's first request (its image, disks and inbox share): parsed and
 * planned before the save, never run (nothing of it exists then).
 */
const MACHINE_SETUP: SetupSpec = {
  hostname: 'warm-up',
  image: { device: { serial: 'warm-up-image' } },
  upper: { device: { serial: 'warm-up-overlay' }, fstype: 'ext4' },
  workspace: { device: { serial: 'warm-up-storage' }, fstype: 'ext4' },
  volumes: [{ tag: 'vol0', path: '/run/warm-up', readOnly: true }],
};

/**
 * One `exec true` and a machine's setup request through a real client and server over a local
 * socket, with `handlers` serving them (a set that never touches the guest root, so the setup is
 * refused after parsing). An abstract socket: nothing on any filesystem.
 */
export async function warmExecPath(handlers: AgentHandlers): Promise<void> {
  const address = `\0smolvm-warm-up-${process.pid}`;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    new AgentServer(socket, handlers).announce(true);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address, resolve);
  });
  const client = new AgentClient(net.connect(address));
  try {
    await client.waitReady();
    await client.ping();
    const session = await client.exec({ argv: ['true'], env: { SMOLVM_WARM_UP: '1' } });
    session.stdout.resume();
    session.stderr.resume();
    await session.exit;
    // Parsed and refused by the root-less handlers; planned here without running a step.
    await client.setup(MACHINE_SETUP).catch(() => undefined);
    planSetup(MACHINE_SETUP, () => '/dev/null');
  } finally {
    client.close();
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** A full GC when the agent runs with --expose-gc (the agent image's node flags). */
export function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
}
