import {
  AgentClient,
  AgentRequestError,
  PROTOCOL_VERSION,
  ProtocolError,
  SessionLostError,
  encodePreamble,
} from '../src';
import { startFakeAgent } from './fake-agent';
import { duplexPair, pattern, readAll } from './pair';

function connect(options: { window?: number } = {}) {
  const pair = duplexPair();
  const client = new AgentClient(pair.host, options);
  const agent = startFakeAgent(pair.agent, options);
  return { pair, client, ...agent };
}

describe('handshake and requests', () => {
  it('becomes ready on the agent hello and answers ping, setTime, setup', async () => {
    const { client, log } = connect();
    await expect(client.waitReady()).resolves.toEqual({ name: 'fake' });
    expect(await client.ping()).toBeGreaterThanOrEqual(0);
    await client.setTime(1700000000123);
    await client.setup({ hostname: 'box', volumes: [{ tag: 'vol0', path: '/data', readOnly: true }] });
    expect(log.calls).toEqual([
      'setTime 1700000000123',
      'setup {"hostname":"box","volumes":[{"tag":"vol0","path":"/data","readOnly":true}]}',
    ]);
    client.close();
  });

  it('prepares for a snapshot; carries host entropy for reseed, and refuses too little of it', async () => {
    const { client, log } = connect();
    await client.prepareSnapshot();
    await client.reseed(Buffer.alloc(64, 7));
    expect(log.calls).toEqual(['prepareSnapshot', 'reseed 64']);
    const err = await client.reseed(Buffer.alloc(8)).catch((e: unknown) => e);
    expect((err as AgentRequestError).code).toBe('bad-request');
    client.close();
  });

  it('gives a restored copy its hostname, and refuses one that is not a hostname', async () => {
    const { client, log } = connect();
    await client.identity({ hostname: 'fork-1' });
    expect(log.calls).toEqual(['identity fork-1']);
    const err = await client.identity({ hostname: 'bad name;rm' }).catch((e: unknown) => e);
    expect((err as AgentRequestError).code).toBe('bad-request');
    client.close();
  });

  it('setupRoot carries only the root fields; a raw one with a run setting is refused', async () => {
    const { client, log } = connect();
    await client.setupRoot({ upperSizeMiB: 64, ...({ hostname: 'dropped' } as object) });
    expect(log.calls).toEqual(['setupRoot {"upperSizeMiB":64}']);
    const { parseSetupRoot } = await import('../src/ops');
    expect(() => parseSetupRoot({ image: { device: { serial: 'smolvm-image' } }, hostname: 'x' })).toThrow(
      'setupRoot: hostname belong to setup, not setupRoot',
    );
    expect(parseSetupRoot({ image: { device: { serial: 'smolvm-image' } } })).toEqual({
      image: { device: { serial: 'smolvm-image' } },
    });
    expect(parseSetupRoot({ rootShare: { tag: 'root' } })).toEqual({ rootShare: { tag: 'root' } });
    expect(() => parseSetupRoot({ rootShare: { tag: 'root' }, image: { device: { serial: 'smolvm-image' } } })).toThrow(
      'setup.rootShare: the root is the share, so image cannot be given',
    );
    expect(() => parseSetupRoot({ rootShare: { tag: 'a,b' } })).toThrow(
      "setup.rootShare: tag 'a,b' has characters a mount option cannot carry",
    );
    client.close();
  });

  it("setup's execRoot: only 'fresh', never with a shared root, and a run setting (not in setupRoot)", async () => {
    const { parseSetup, parseSetupRoot, rootSetupOf } = await import('../src/ops');
    expect(parseSetup({ execRoot: 'fresh', upperSizeMiB: 64 })).toEqual({ execRoot: 'fresh', upperSizeMiB: 64 });
    expect(rootSetupOf({ execRoot: 'fresh', upperSizeMiB: 64 })).toEqual({ upperSizeMiB: 64 });
    expect(() => parseSetup({ execRoot: 'shared' })).toThrow("setup.execRoot: 'shared' is not 'fresh'");
    expect(() => parseSetup({ execRoot: 'fresh', rootShare: { tag: 'root' } })).toThrow(
      'setup.execRoot: a shared root has no overlay to give each exec',
    );
    expect(() => parseSetupRoot({ execRoot: 'fresh' })).toThrow('setupRoot: execRoot belong to setup, not setupRoot');
  });

  it('reports a failed setup as setup-failed with the agent message', async () => {
    const { client } = connect();
    const err = await client.setup({ hostname: 'fail' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentRequestError);
    expect((err as AgentRequestError).code).toBe('setup-failed');
    expect((err as AgentRequestError).message).toBe('agent setup: mount: no such device');
    expect(await client.ping()).toBeGreaterThanOrEqual(0);
    client.close();
  });

  it('answers a request the agent cannot parse with bad-request, and the connection lives on', async () => {
    const { client } = connect();
    const err = await client.setup({ volumes: [{ tag: 'a,b', path: 'relative' }] }).catch((e: unknown) => e);
    expect((err as AgentRequestError).code).toBe('bad-request');
    expect(await client.ping()).toBeGreaterThanOrEqual(0);
    client.close();
  });

  it('refuses an agent speaking another protocol version, with a remedy', async () => {
    const pair = duplexPair();
    const client = new AgentClient(pair.host);
    const { encodeFrame } = await import('../src');
    for (const b of encodeFrame({
      t: 'hello',
      version: PROTOCOL_VERSION + 1,
      window: 65536,
      maxFrame: 1 << 20,
      ready: true,
    }))
      pair.agent.write(b);
    const err = await client.waitReady().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).message).toMatch(
      `the agent speaks protocol version ${PROTOCOL_VERSION + 1}, this smolvm speaks version ${PROTOCOL_VERSION}`,
    );
    expect((err as ProtocolError).remedy).toMatch(/rebuild the agent image/);
    await expect(client.closed).resolves.toBeInstanceOf(ProtocolError);
  });

  it('waits for a ready event when the hello says not ready yet', async () => {
    const pair = duplexPair();
    const client = new AgentClient(pair.host);
    const { AgentServer } = await import('../src');
    const { fakeHandlers } = await import('./fake-agent');
    const server = new AgentServer(pair.agent, fakeHandlers({ signals: [], resizes: [], calls: [], flooded: 0 }), {
      agent: { v: 1 },
    });
    server.announce(false);
    let ready = false;
    void client.waitReady().then(() => (ready = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(ready).toBe(false);
    server.markReady();
    await expect(client.waitReady()).resolves.toEqual({ v: 1 });
    client.close();
  });

  it('shutdown: prepares, acknowledges, then powers off', async () => {
    const { client, log } = connect();
    await client.shutdown();
    await new Promise((r) => setTimeout(r, 10));
    expect(log.calls).toEqual(['prepareShutdown', 'powerOff']);
  });

  it('rejects pending requests when the channel drops, without crashing', async () => {
    const { client, pair } = connect();
    await client.waitReady();
    const session = await client.exec({ argv: ['wait'] });
    pair.agent.destroy();
    await expect(session.exit).rejects.toBeInstanceOf(ProtocolError);
    await expect(client.ping()).rejects.toBeInstanceOf(ProtocolError);
    await expect(client.closed).resolves.toBeInstanceOf(ProtocolError);
  });
});

describe('a preamble (requests sent before the client existed)', () => {
  const preamble = [
    { op: 'setTime', args: { epochMs: 1700000000123 } },
    { op: 'reseed', args: { entropy: Buffer.alloc(64, 7).toString('base64') } },
    { op: 'setup', args: { hostname: 'box' } },
  ];

  it('is answered to the client that adopts it, which sends no hello of its own and goes on from there', async () => {
    const pair = duplexPair();
    const { log } = startFakeAgent(pair.agent);
    // Written first, as an early start does; the client comes later and finds the answers waiting.
    pair.host.write(encodePreamble(preamble));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const client = new AgentClient(pair.host, { preamble: preamble.map((r) => r.op) });
    await expect(client.preambleDone).resolves.toBeUndefined();
    await expect(client.waitReady()).resolves.toEqual({ name: 'fake' });
    // A second hello would be a protocol error on the agent's side: the session goes on instead.
    await client.setTime(1700000000999);
    expect(log.calls).toEqual([
      'setTime 1700000000123',
      'reseed 64',
      'setup {"hostname":"box"}',
      'setTime 1700000000999',
    ]);
    client.close();
  });

  it("fails with the agent's answer when one of its requests fails", async () => {
    const pair = duplexPair();
    startFakeAgent(pair.agent);
    pair.host.write(encodePreamble([...preamble.slice(0, 2), { op: 'setup', args: { hostname: 'fail' } }]));
    const client = new AgentClient(pair.host, { preamble: preamble.map((r) => r.op) });
    const err = await client.preambleDone?.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentRequestError);
    expect((err as AgentRequestError).op).toBe('setup');
    client.close();
  });

  it('a plain client has none', () => {
    const pair = duplexPair();
    const client = new AgentClient(pair.host);
    expect(client.preambleDone).toBeUndefined();
    client.close();
  });
});

describe('exec', () => {
  it('fails with command-not-found for an unknown program', async () => {
    const { client } = connect();
    const err = await client.exec({ argv: ['missing'] }).catch((e: unknown) => e);
    expect((err as AgentRequestError).code).toBe('command-not-found');
    client.close();
  });

  it('passes env, cwd, user and tty options through', async () => {
    const { client } = connect();
    const s = await client.exec({
      argv: ['env'],
      env: { A: '1' },
      cwd: '/w',
      user: '1000:1000',
      tty: { rows: 24, cols: 80 },
    });
    expect(s.pid).toBe(4242);
    const out = JSON.parse((await readAll(s.stdout)).toString());
    expect(out).toEqual({
      env: { A: '1' },
      cwd: '/w',
      user: '1000:1000',
      tty: { rows: 24, cols: 80, term: 'xterm-256color' },
    });
    await expect(s.exit).resolves.toEqual({ code: 0, signal: null });
    client.close();
  });

  it('streams 10 MB each way: stdin in, stdout back, stderr separate', async () => {
    const { client } = connect();
    const s = await client.exec({ argv: ['cat'], stdin: true });
    const input = pattern(10 * 1024 * 1024, 9);
    const outP = readAll(s.stdout);
    const errP = readAll(s.stderr);
    s.stdin.end(input);
    const [out, err] = await Promise.all([outP, errP]);
    expect(out.length).toBe(input.length);
    expect(Buffer.compare(out, input)).toBe(0);
    expect(err.toString()).toBe(`${input.length}\n`);
    await expect(s.exit).resolves.toEqual({ code: 0, signal: null });
    client.close();
  });

  it('keeps stdout and stderr apart at 10 MB each and reports the exit code', async () => {
    const { client } = connect();
    const n = 10 * 1024 * 1024;
    const s = await client.exec({ argv: ['split', String(n), '3'] });
    const [out, err] = await Promise.all([readAll(s.stdout), readAll(s.stderr)]);
    expect(Buffer.compare(out, pattern(n, 1))).toBe(0);
    expect(Buffer.compare(err, pattern(n, 2))).toBe(0);
    await expect(s.exit).resolves.toEqual({ code: 3, signal: null });
    client.close();
  });

  it('delivers signals and resizes to the session; unknown signals are bad requests', async () => {
    const { client, log } = connect();
    const s = await client.exec({ argv: ['wait'], tty: { rows: 10, cols: 20 } });
    await s.resize(50, 132);
    expect(log.resizes).toEqual([[50, 132]]);
    await expect(s.signal('SIGBOGUS')).rejects.toMatchObject({ code: 'bad-request' });
    await s.signal('SIGTERM');
    await expect(s.exit).resolves.toEqual({ code: null, signal: 'SIGTERM' });
    await expect(s.signal('SIGTERM')).rejects.toMatchObject({ code: 'no-such-session' });
    client.close();
  });

  it('rejects exit with SessionLostError when the agent lost the process, instead of a made-up status', async () => {
    const { client } = connect();
    const s = await client.exec({ argv: ['lost'] });
    await expect(s.exit).rejects.toThrow(SessionLostError);
    await expect(s.exit).rejects.toThrow("the command's session was lost: Error: the VM went away");
    expect(await client.ping()).toEqual(expect.any(Number));
    client.close();
  });

  it('runs sessions concurrently', async () => {
    const { client } = connect();
    const sessions = await Promise.all(
      [1, 2, 3, 4].map((i) => client.exec({ argv: ['split', String(100000 * i), String(i)] })),
    );
    const results = await Promise.all(
      sessions.map(async (s) => ({
        out: (await readAll(s.stdout)).length,
        err: (await readAll(s.stderr)).length,
        exit: await s.exit,
      })),
    );
    expect(results).toEqual(
      [1, 2, 3, 4].map((i) => ({ out: 100000 * i, err: 100000 * i, exit: { code: i, signal: null } })),
    );
    client.close();
  });
});

describe('flow control', () => {
  it('a reader that does not read holds the sender to one window, then everything arrives', async () => {
    const window = 64 * 1024;
    const { client, log, pair } = connect({ window });
    const total = 8 * 1024 * 1024;
    const s = await client.exec({ argv: ['flood', String(total)] });
    await new Promise((r) => setTimeout(r, 200));
    // Not reading: the agent may have one window in flight plus what its own buffers hold.
    expect(s.stdout.readableLength).toBeLessThanOrEqual(window);
    expect(pair.written.agent).toBeLessThan(window + 64 * 1024 * 2 + 16 * 1024);
    // ...and the agent-side stream buffers at most its 256 KiB high-water mark plus one chunk.
    expect(log.flooded).toBeLessThanOrEqual(window + 256 * 1024 + 64 * 1024);
    const out = await readAll(s.stdout);
    expect(out.length).toBe(total);
    await expect(s.exit).resolves.toEqual({ code: 0, signal: null });
    client.close();
  });

  it('a guest reader that stalls holds host stdin writes back', async () => {
    const window = 16 * 1024;
    const pair = duplexPair();
    const client = new AgentClient(pair.host, { window });
    const { AgentServer } = await import('../src');
    let received = 0;
    let guestStdin: NodeJS.ReadableStream | null = null;
    const server = new AgentServer(
      pair.agent,
      {
        async exec(_req, io) {
          guestStdin = io.stdin;
          io.stdin?.pause();
          io.stdin?.on('data', (c: Buffer) => (received += c.length));
          io.stdin?.pause();
          return { pid: 1, exited: new Promise(() => undefined), signal: () => undefined, resize: () => undefined };
        },
      },
      { window },
    );
    server.announce();
    const s = await client.exec({ argv: ['x'], stdin: true });
    const total = 1024 * 1024;
    const chunk = Buffer.alloc(4096);
    const writer = (async () => {
      for (let sent = 0; sent < total; sent += chunk.length) {
        if (!s.stdin.write(chunk)) await new Promise((r) => s.stdin.once('drain', r));
      }
    })();
    await new Promise((r) => setTimeout(r, 100));
    expect(received).toBe(0);
    expect(pair.written.host).toBeLessThan(window + 4096 * 2 + 1024);
    (guestStdin as unknown as NodeJS.ReadableStream).resume();
    await writer;
    await new Promise((r) => setTimeout(r, 50));
    expect(received).toBe(total);
    expect(await client.ping()).toBeGreaterThanOrEqual(0);
    client.close();
  });
});

describe('a misbehaving agent', () => {
  async function hostile(frames: Array<[object, Buffer?]>) {
    const pair = duplexPair();
    const client = new AgentClient(pair.host);
    const { encodeFrame } = await import('../src');
    for (const [h, p] of frames) for (const b of encodeFrame(h, p)) pair.agent.write(b);
    return { client, pair };
  }
  const hello = { t: 'hello', version: PROTOCOL_VERSION, window: 65536, maxFrame: 1 << 20, ready: true };

  it.each([
    ['an unknown frame type', { t: 'bogus' }, /malformed frame: unknown frame type 'bogus'/],
    ['a request (hosts serve none)', { t: 'req', id: 1, op: 'exec', args: {} }, /unexpected request 'exec'/],
    ['a response to nothing', { t: 'res', id: 77, ok: true, result: {} }, /response to unknown request 77/],
    ['data for a stream never opened', { t: 'data', s: 99 }, /data for unknown stream 99/],
    ['credit with a negative count', { t: 'credit', s: 1, n: -5 }, /frame.n: expected an integer/],
    [
      'an exit for an unknown session',
      { t: 'event', op: 'exit', args: { session: 5, code: 0, signal: null } },
      /exit for unknown session 5/,
    ],
    ['a second hello', hello, /second hello/],
  ])('is cut off for %s', async (_name, frame, message) => {
    const { client } = await hostile([[hello], [frame, frame.t === 'data' ? Buffer.from('x') : undefined]]);
    await client.waitReady();
    const reason = await client.closed;
    expect(reason).toBeInstanceOf(ProtocolError);
    expect((reason as Error).message).toMatch(message);
  });

  it('is cut off for a frame length over the limit, and pending work fails with that reason', async () => {
    const pair = duplexPair();
    const client = new AgentClient(pair.host);
    const { encodeFrame } = await import('../src');
    for (const b of encodeFrame(hello)) pair.agent.write(b);
    await client.waitReady();
    const pending = client.ping();
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(0x7fffffff, 0);
    pair.agent.write(huge);
    await expect(pending).rejects.toThrow(/frame of 2147483647 bytes exceeds the 1048576-byte limit/);
  });

  it('is cut off when it sends beyond its credit', async () => {
    const pair = duplexPair();
    const client = new AgentClient(pair.host, { window: 16 * 1024 });
    const { encodeFrame } = await import('../src');
    for (const b of encodeFrame(hello)) pair.agent.write(b);
    await client.waitReady();
    const execP = client.exec({ argv: ['x'] });
    // The agent answers the exec (request id 1, stdout stream 1, stderr 3) and floods stdout.
    await new Promise((r) => setTimeout(r, 20));
    for (const b of encodeFrame({ t: 'res', id: 1, ok: true, result: { pid: 5 } })) pair.agent.write(b);
    const s = await execP;
    for (let i = 0; i < 3; i++)
      for (const b of encodeFrame({ t: 'data', s: 1 }, Buffer.alloc(8 * 1024))) pair.agent.write(b);
    await expect(s.exit).rejects.toThrow(/stream 1: peer sent 8192 bytes beyond its credit/);
  });

  it('is cut off for a malformed exec result', async () => {
    const pair = duplexPair();
    const client = new AgentClient(pair.host);
    const { encodeFrame } = await import('../src');
    for (const b of encodeFrame(hello)) pair.agent.write(b);
    await client.waitReady();
    const execP = client.exec({ argv: ['x'] });
    await new Promise((r) => setTimeout(r, 20));
    for (const b of encodeFrame({ t: 'res', id: 1, ok: true, result: { pid: 'one' } })) pair.agent.write(b);
    await expect(execP).rejects.toThrow(/malformed message: exec result.pid/);
    await expect(client.closed).resolves.toBeInstanceOf(ProtocolError);
  });
});

describe('agent-opened relays (sshAgentConnect)', () => {
  it('delivers both directions with half-close, several relays at once', async () => {
    const { client, server } = connect();
    await client.waitReady();
    const relays: Array<Promise<void>> = [];
    // The host side echoes what it gets, upper-cased, then ends its direction.
    client.serveSshAgent(({ input, output }) => {
      relays.push(
        readAll(input).then(
          (b) => new Promise<void>((resolve) => output.end(Buffer.from(b.toString().toUpperCase()), () => resolve())),
        ),
      );
    });
    const a = server.openRelay('sshAgentConnect');
    const b = server.openRelay('sshAgentConnect');
    expect(b.toHost.id % 2).toBe(0);
    a.toHost.end('first');
    b.toHost.end(pattern(300_000, 3).toString('hex'));
    expect((await readAll(a.fromHost)).toString()).toBe('FIRST');
    expect((await readAll(b.fromHost)).toString()).toBe(pattern(300_000, 3).toString('hex').toUpperCase());
    await Promise.all(relays);
    client.close();
  });

  it('without a host handler the guest client sees end of stream at once', async () => {
    const { client, server } = connect();
    await client.waitReady();
    const { toHost, fromHost } = server.openRelay('sshAgentConnect');
    expect((await readAll(fromHost)).length).toBe(0);
    toHost.end('ignored');
    expect(await client.ping()).toBeGreaterThanOrEqual(0);
    client.close();
  });
});

describe('setup: network and sshAgent', () => {
  it('passes a valid network and ssh agent socket through and refuses bad addresses', async () => {
    const { client, log } = connect();
    await client.setup({
      network: { ip: '192.168.127.2', prefix: 24, gateway: '192.168.127.1', mtu: 1500, mac: '52:54:00:12:34:56' },
      sshAgent: { socket: '/run/smolvm-ssh/agent.sock' },
    });
    expect(log.calls).toEqual([
      'setup {"network":{"ip":"192.168.127.2","prefix":24,"gateway":"192.168.127.1","mtu":1500,"mac":"52:54:00:12:34:56"},"sshAgent":{"socket":"/run/smolvm-ssh/agent.sock"}}',
    ]);
    const bad = await client
      .setup({ network: { ip: '192.168.127.300', prefix: 24, gateway: '192.168.127.1', mtu: 1500 } })
      .catch((e: unknown) => e);
    expect((bad as AgentRequestError).code).toBe('bad-request');
    const relative = await client.setup({ sshAgent: { socket: 'agent.sock' } }).catch((e: unknown) => e);
    expect((relative as AgentRequestError).code).toBe('bad-request');
    client.close();
  });
});
