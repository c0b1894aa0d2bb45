// A hostile guest against --ssh-agent's host end: requests other than listing keys and signing
// must never reach the host's agent, oversized messages end the connection, and the number of
// guest connections is capped. First the filter on raw messages, then the relay against a real
// ssh-agent driven by the real ssh-add/ssh-keygen (as a guest would run them).
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { Duplex, PassThrough, Writable } from 'node:stream';
import { AGENT_MAX_MESSAGE, filterAgentConnection } from '../src/ssh-agent-filter';
import { SSH_AGENT_MAX_CONNECTIONS, sshAgentSetup } from '../src/network';

const FAILURE = Buffer.from([0, 0, 0, 1, 5]);

function message(type: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(body.length + 1, 0);
  header[4] = type;
  return Buffer.concat([header, body]);
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await tick();
}

/** A filter between stream ends the test drives: what the guest is sent, what reaches the "host agent". */
function harness(output: Writable = new PassThrough()) {
  const input = new PassThrough();
  const toHost: Buffer[] = [];
  const host = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      toHost.push(chunk);
      callback();
    },
  });
  let closed = false;
  const refused: number[] = [];
  filterAgentConnection({ input, output }, host, { onClose: () => (closed = true), onRefused: (t) => refused.push(t) });
  const received = (): Buffer =>
    output instanceof PassThrough ? ((output.read() as Buffer | null) ?? Buffer.alloc(0)) : Buffer.alloc(0);
  return {
    input,
    output,
    host,
    toHost: () => Buffer.concat(toHost),
    received,
    closed: () => closed,
    refused,
    hostDestroyed: () => host.destroyed,
  };
}

describe('filterAgentConnection on raw messages', () => {
  // SSH1 requests, add/remove/remove-all, smartcard add/remove, lock/unlock, constrained adds,
  // extensions (session-bind, query...) and types no agent defines.
  it.each([1, 2, 3, 4, 7, 8, 9, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 0, 255])(
    'type %d is answered with a failure and never reaches the host',
    async (type) => {
      const h = harness();
      h.input.write(message(type, Buffer.from('payload')));
      await settle();
      expect(h.received()).toEqual(FAILURE);
      expect(h.toHost()).toEqual(Buffer.alloc(0));
      expect(h.refused).toEqual([type]);
      expect(h.closed()).toBe(false);
    },
  );

  it('forwards list-identities and sign requests verbatim, and their answers, in order with refusals', async () => {
    const h = harness();
    const list = message(11);
    const add = message(17, Buffer.from('a key'));
    const sign = message(13, Buffer.from('key blob, data, flags'));
    // Pipelined in one write: the sign request goes only once the list is answered.
    h.input.write(Buffer.concat([list, add, sign]));
    await settle();
    expect(h.toHost()).toEqual(list);
    const identities = message(12, Buffer.from([0, 0, 0, 0]));
    h.host.push(identities);
    await settle();
    expect(h.toHost()).toEqual(Buffer.concat([list, sign]));
    const signature = message(14, Buffer.from('signature'));
    // An answer split across reads is still one answer.
    h.host.push(signature.subarray(0, 3));
    await settle();
    h.host.push(signature.subarray(3));
    await settle();
    expect(h.received()).toEqual(Buffer.concat([identities, FAILURE, signature]));
    expect(h.refused).toEqual([17]);
  });

  it('serves request after request on one connection, each written once the last is answered', async () => {
    const h = harness();
    for (const [request, answer] of [
      [message(11), message(12, Buffer.from([0, 0, 0, 0]))],
      [message(19), FAILURE],
      [message(13, Buffer.from('sign this')), message(14, Buffer.from('signature'))],
      [message(11), message(12, Buffer.from([0, 0, 0, 0]))],
    ]) {
      h.input.write(request);
      await settle();
      if (request[4] !== 19) h.host.push(answer);
      await settle();
      expect(h.received()).toEqual(answer);
    }
    expect(h.toHost()).toEqual(Buffer.concat([message(11), message(13, Buffer.from('sign this')), message(11)]));
  });

  it('a message of exactly the cap is forwarded; one byte more closes the connection before anything reaches the host', async () => {
    const ok = harness();
    const largest = message(13, Buffer.alloc(AGENT_MAX_MESSAGE - 1));
    ok.input.write(largest);
    await settle();
    expect(ok.toHost()).toEqual(largest);

    const h = harness();
    const header = Buffer.alloc(5);
    header.writeUInt32BE(AGENT_MAX_MESSAGE + 1, 0);
    header[4] = 13;
    h.input.write(header);
    await settle();
    expect(h.closed()).toBe(true);
    expect(h.hostDestroyed()).toBe(true);
    expect(h.output.writableEnded).toBe(true);
    expect(h.toHost()).toEqual(Buffer.alloc(0));
  });

  it('a message of length 0 (no type) closes the connection', async () => {
    const h = harness();
    h.input.write(Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, 11]));
    await settle();
    expect(h.closed()).toBe(true);
    expect(h.toHost()).toEqual(Buffer.alloc(0));
  });

  it('an answer nobody asked for or an oversized answer from the host closes the connection', async () => {
    const unasked = harness();
    unasked.host.push(message(12, Buffer.from([0, 0, 0, 0])));
    await settle();
    expect(unasked.closed()).toBe(true);
    expect(unasked.received()).toEqual(Buffer.alloc(0));

    const oversized = harness();
    oversized.input.write(message(11));
    await settle();
    const header = Buffer.alloc(4);
    header.writeUInt32BE(AGENT_MAX_MESSAGE + 1, 0);
    oversized.host.push(header);
    await settle();
    expect(oversized.closed()).toBe(true);
  });

  it('a guest that half-closes after its request still gets the answer, then the end', async () => {
    const h = harness();
    h.input.end(message(11));
    await settle();
    expect(h.closed()).toBe(false);
    const identities = message(12, Buffer.from([0, 0, 0, 0]));
    h.host.push(identities);
    await settle();
    expect(h.received()).toEqual(identities);
    expect(h.closed()).toBe(true);
    expect(h.output.writableEnded).toBe(true);
  });

  it('a guest that sends refused requests without reading its answers is held back, not buffered', async () => {
    // The guest's answer stream never drains (its reader is stuck).
    const stuck = new Writable({ highWaterMark: 1024, write: () => undefined });
    const h = harness(stuck);
    const flood = Buffer.concat(Array.from({ length: 200_000 }, () => message(17)));
    h.input.write(flood);
    await settle();
    // At most one of the guest's chunks is unread: far less than the megabyte written.
    expect(stuck.writableLength).toBeLessThanOrEqual(64 * 1024);
    expect(h.input.isPaused()).toBe(true);
    expect(h.toHost()).toEqual(Buffer.alloc(0));
  });
});

describe('the --ssh-agent relay against a real ssh-agent', () => {
  // Real processes on a shared, busy host.
  jest.setTimeout(60_000);
  let dir: string;
  let agentPid: number;
  let hostSock: string;
  let guestSock: string;
  let server: net.Server;
  let fingerprint: string;
  const guestConns = new Set<net.Socket>();
  /** What the relay reported refusing (for --debug or the machine log). */
  const refusals: string[] = [];

  function cmd(
    file: string,
    args: string[],
    sock = guestSock,
  ): Promise<{ status: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      // setsid: no terminal to prompt on, so passphrases come from the askpass script.
      const child = spawn('setsid', [file, ...args], {
        env: {
          PATH: process.env.PATH,
          SSH_AUTH_SOCK: sock,
          SSH_ASKPASS: path.join(dir, 'askpass'),
          SSH_ASKPASS_REQUIRE: 'force',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });
  }

  /** What the host's agent holds, asked directly (not through the relay). */
  async function hostKeys(): Promise<string> {
    return (await cmd('ssh-add', ['-l'], hostSock)).stdout;
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-sshagent-'));
    hostSock = path.join(dir, 'agent.sock');
    guestSock = path.join(dir, 'guest.sock');
    const agent = spawnSync('ssh-agent', ['-a', hostSock], { encoding: 'utf8' });
    if (agent.status !== 0) throw new Error(`ssh-agent: ${agent.stderr}`);
    agentPid = Number(/SSH_AGENT_PID=(\d+)/.exec(agent.stdout)?.[1]);
    for (const name of ['key', 'other'])
      spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', path.join(dir, name)]);
    fs.mkdirSync(path.join(dir, 'pub'));
    fs.copyFileSync(path.join(dir, 'key.pub'), path.join(dir, 'pub', 'key.pub'));
    fs.writeFileSync(path.join(dir, 'askpass'), '#!/bin/sh\necho passphrase\n', { mode: 0o755 });
    const add = await cmd('ssh-add', [path.join(dir, 'key')], hostSock);
    if (add.status !== 0) throw new Error(`ssh-add: ${add.stderr}`);
    fingerprint = spawnSync('ssh-keygen', ['-l', '-f', path.join(dir, 'key.pub')], { encoding: 'utf8' }).stdout;
    // The guest's socket: each connection is handed to the relay as the agent protocol would.
    const { relay } = sshAgentSetup({ SSH_AUTH_SOCK: hostSock }, (request) => refusals.push(request));
    server = net.createServer({ allowHalfOpen: true }, (conn) => {
      guestConns.add(conn);
      conn.once('close', () => guestConns.delete(conn));
      relay({ input: conn, output: conn });
    });
    await new Promise<void>((resolve) => server.listen(guestSock, resolve));
  });

  // Each attack starts from the same host agent: one key, unlocked (whatever an attack that got through did).
  afterEach(async () => {
    await cmd('ssh-add', ['-X'], hostSock);
    await cmd('ssh-add', ['-D'], hostSock);
    await cmd('ssh-add', [path.join(dir, 'key')], hostSock);
  });

  afterAll(async () => {
    for (const c of guestConns) c.destroy();
    await new Promise((resolve) => server?.close(resolve));
    if (agentPid) process.kill(agentPid);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('lists the host key and signs with it', async () => {
    const list = await cmd('ssh-add', ['-l']);
    expect(list.stdout).toBe(fingerprint);
    fs.writeFileSync(path.join(dir, 'data'), 'signed in the guest\n');
    const sign = await cmd('ssh-keygen', [
      '-Y',
      'sign',
      '-f',
      path.join(dir, 'pub', 'key.pub'),
      '-n',
      'file',
      path.join(dir, 'data'),
    ]);
    expect(sign.status).toBe(0);
    const check = spawnSync('ssh-keygen', ['-Y', 'check-novalidate', '-n', 'file', '-s', path.join(dir, 'data.sig')], {
      input: 'signed in the guest\n',
      encoding: 'utf8',
    });
    expect(check.stdout).toMatch(/^Good "file" signature/);
  });

  it.each([
    ['delete all keys', ['-D'], 'remove all identities (19)'],
    ['delete the key', ['-d', 'KEY.pub'], 'remove identity (18)'],
    ['add a key', ['OTHER'], 'add identity (17)'],
    ['lock the agent', ['-x'], 'lock (22)'],
  ])('ssh-add cannot %s; the host agent keeps its key, unlocked', async (_what, args, request) => {
    const argv = args.map((a) => a.replace('KEY', path.join(dir, 'key')).replace('OTHER', path.join(dir, 'other')));
    refusals.length = 0;
    const r = await cmd('ssh-add', argv);
    expect(r.status).not.toBe(0);
    expect(await hostKeys()).toBe(fingerprint);
    expect(refusals).toContain(request);
  });

  it('ssh-add cannot unlock an agent the host user locked', async () => {
    expect((await cmd('ssh-add', ['-x'], hostSock)).status).toBe(0);
    expect((await cmd('ssh-add', ['-X'])).status).not.toBe(0);
    // Still locked (a locked agent lists nothing); the host user's unlock works.
    expect(await hostKeys()).toBe('The agent has no identities.\n');
    expect((await cmd('ssh-add', ['-X'], hostSock)).status).toBe(0);
    expect(await hostKeys()).toBe(fingerprint);
  });

  it(`serves ${SSH_AGENT_MAX_CONNECTIONS} connections at once and closes more as they arrive`, async () => {
    const list = message(11);
    const open = (): Promise<net.Socket> =>
      new Promise((resolve, reject) => {
        const s = net.connect(guestSock, () => resolve(s));
        s.once('error', reject);
      });
    /** The first answer to a list request, or null when the connection ends without one. */
    const ask = (s: net.Socket): Promise<number | null> =>
      new Promise((resolve) => {
        s.once('data', (d: Buffer) => resolve(d[4]));
        s.once('end', () => resolve(null));
        s.once('error', () => resolve(null));
        s.write(list);
      });
    const held = await Promise.all(Array.from({ length: SSH_AGENT_MAX_CONNECTIONS }, open));
    expect(await Promise.all(held.map(ask))).toEqual(Array(SSH_AGENT_MAX_CONNECTIONS).fill(12));
    const extra = await Promise.all(Array.from({ length: 4 }, open));
    expect(await Promise.all(extra.map(ask))).toEqual([null, null, null, null]);
    // A connection that ends frees its place.
    await new Promise<void>((resolve) => {
      held[0].once('close', () => resolve());
      held[0].end();
    });
    await settle();
    const next = await open();
    expect(await ask(next)).toBe(12);
    for (const s of [...held, ...extra, next]) s.destroy();
  });
});
