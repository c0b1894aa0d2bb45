// Entry point inside the VM. Started by the agent image's /init (busybox sh, which stays PID 1
// and reaps orphans). Loads everything it will ever need (koffi, libc bindings, a handle on
// busybox) before the first setup request chroots it into the guest root, then serves the
// protocol on the virtio port, reopening it if the host side goes away (snapshot restore).
//
// Built twice from the same bundle: run directly, or as a V8 startup snapshot entry
// (`node --build-snapshot agent.js`), where the main function runs after deserialization.
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import { AgentServer, FrameDecoder, encodeFrame, type AgentInfo } from '@smolvm/agent-protocol';
import { createHandlers } from './handlers';
import { findAgentPort, openPort, type PortMode } from './port';
import { createGuestSystem } from './system';
import { posixSpawnAvailable } from './posix-spawn';

const RETRY_MS = 100;
// The host side goes away when a boot snapshot is saved; in the restored VM a new host is there
// at once, and every millisecond until the agent reopens its port delays the first answer.
// QEMU never outlives the host process, so this fast poll only runs for such short gaps.
const REOPEN_MS = 5;

function uptimeMs(): number | null {
  try {
    return Math.round(Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000);
  } catch {
    return null;
  }
}

function log(message: string): void {
  try {
    fs.writeSync(2, `smolvm-agent: ${message}\n`);
  } catch {
    // No console: nothing to do.
  }
}

function main(snapshot: boolean): void {
  const agentStart = performance.now();
  // After chroot the agent image is gone from view; an open fd keeps busybox reachable.
  const busyboxFd = fs.openSync('/bin/busybox', 'r');
  const busybox = `/proc/self/fd/${busyboxFd}`;
  const system = createGuestSystem({ busybox });
  // Bound before the first setup chroots the agent (libc.so.6 may not be in the guest root).
  posixSpawnAvailable();
  // Relays the guest opens (SSH agent) go over whichever connection is current.
  let current: AgentServer | undefined;
  const handlers = createHandlers({ system, busybox, openRelay: () => current?.openRelay('sshAgentConnect') });
  const prefer: PortMode = process.env.SMOLVM_AGENT_PORT_MODE === 'fs' ? 'fs' : 'pipe';
  let first = true;
  // Found once: the port's device node never changes while the VM lives, and a restored agent
  // reconnecting should not walk sysfs again (every code path costs translation under TCG).
  let device: string | null = null;

  const serve = () => {
    device ??= findAgentPort();
    if (!device) {
      log('no virtio port named smolvm.agent; retrying');
      setTimeout(serve, RETRY_MS);
      return;
    }
    const { io, mode } = openPort(device, prefer);
    const info: AgentInfo = {
      agent: 'smolvm-guest-agent',
      node: process.version,
      pid: process.pid,
      snapshot,
      port: mode,
      // Boot timings describe the first connection only.
      ...(first ? { kernelUptimeMs: uptimeMs(), agentStartMs: Math.round(performance.now() - agentStart) } : {}),
      reconnect: !first,
    };
    first = false;
    const server = new AgentServer(io, handlers, { agent: info });
    current = server;
    server.announce(true);
    const opened = Date.now();
    void server.closed.then((reason) => {
      if (current === server) current = undefined;
      // While no host is connected the port reads EOF at once: only a real session's end is news.
      if (reason && Date.now() - opened > 1000) log(`channel closed (${reason.message}); reopening`);
      setTimeout(serve, REOPEN_MS);
    });
  };
  serve();
}

/** Runs the hot paths once so the snapshot holds them compiled and their shapes settled. */
function warmUp(): void {
  const decoder = new FrameDecoder(1 << 20);
  for (let i = 0; i < 50; i++) {
    const bytes = Buffer.concat([
      ...encodeFrame({ t: 'req', id: i + 1, op: 'exec', args: { argv: ['true'], env: {}, stdout: 1, stderr: 3 } }),
      ...encodeFrame({ t: 'data', s: 1 }, Buffer.alloc(64)),
    ]);
    decoder.push(bytes);
  }
  path.join('/', 'x');
}

if (v8.startupSnapshot?.isBuildingSnapshot()) {
  warmUp();
  v8.startupSnapshot.setDeserializeMainFunction(() => main(true));
} else if (require.main === module) {
  main(false);
}
