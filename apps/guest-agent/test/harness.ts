// Serves the real agent handlers on this host over a unix socket pair: the same code that runs
// in the VM, minus the privileged guest system (no mounts, clock or power here).
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { AgentClient, AgentRequestError, AgentServer } from '@smolvm/agent-protocol';
import { createHandlers, type GuestSystem } from '../src';

export function hostBusybox(): string {
  for (const p of ['/usr/bin/busybox', '/bin/busybox']) if (fs.existsSync(p)) return p;
  throw new Error('busybox not found: run tools/setup (installs busybox-static)');
}

export interface Harness {
  client: AgentClient;
  server: AgentServer;
  close(): Promise<void>;
}

export async function startHarness(lingerMs = 250, system?: GuestSystem, idleTrimMs?: number): Promise<Harness> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-agent-test-'));
  const sock = path.join(dir, 'agent.sock');
  const listener = net.createServer();
  await new Promise<void>((resolve) => listener.listen(sock, resolve));
  const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
  const hostSide = net.connect(sock);
  const agentSide = await accepted;
  const handlers = createHandlers({ busybox: hostBusybox(), lingerMs, idleTrimMs, ...(system ? { system } : {}) });
  const server = new AgentServer(agentSide, handlers, { agent: { where: 'host' } });
  server.announce();
  const client = new AgentClient(hostSide);
  await client.waitReady();
  return {
    client,
    server,
    async close() {
      handlers.killAll();
      client.close();
      server.close();
      await new Promise((r) => listener.close(r));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Resolves with everything read so far once `text` has appeared in the stream. */
export function waitFor(stream: NodeJS.ReadableStream, text: string): Promise<string> {
  let seen = '';
  return new Promise((resolve, reject) => {
    const onData = (c: Buffer) => {
      seen += c.toString();
      if (seen.includes(text)) {
        stream.off('data', onData);
        resolve(seen);
      }
    };
    stream.on('data', onData);
    stream.once('end', () => reject(new Error(`stream ended before '${text}'; got: ${JSON.stringify(seen)}`)));
  });
}

/** One harness for the whole test file and a fresh temp dir for each test (removed after it). */
export function useHarnessAndTempDir(prefix: string): { readonly h: Harness; readonly dir: string } {
  let h: Harness | undefined;
  let dir: string | undefined;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.close();
  });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  });
  afterEach(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    get h() {
      if (!h) throw new Error('the harness is not started yet (use it inside a test)');
      return h;
    },
    get dir() {
      if (!dir) throw new Error('no temp dir outside a test');
      return dir;
    },
  };
}

/** The AgentRequestError a call rejected with (fails the test if it resolved or threw anything else). */
export async function rejection(p: Promise<unknown>): Promise<AgentRequestError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentRequestError);
  return err as AgentRequestError;
}
