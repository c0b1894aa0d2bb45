// setupRoot before a boot snapshot, setup after the restore: the handlers' rules, with a guest
// system that records what it is asked to do instead of mounting anything.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { AgentRequestError, type RootSetupSpec, type SetupSpec } from '@smolvm/agent-protocol';
import { warmExecPath, createHandlers, type GuestSystem } from '../src';
import { hostBusybox, startHarness, type Harness } from './harness';

function recordingSystem(rootDelayMs = 0): GuestSystem & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    isSetUp: false,
    async setup(spec: SetupSpec) {
      calls.push(`setup ${JSON.stringify(spec)}`);
    },
    async setupRoot(spec: RootSetupSpec) {
      await new Promise((r) => setTimeout(r, rootDelayMs));
      calls.push(`setupRoot ${JSON.stringify(spec)}`);
    },
    async configure(spec: SetupSpec) {
      calls.push(`configure ${JSON.stringify(spec)}`);
    },
    setTime: () => undefined,
    reseed: () => undefined,
    identity: () => undefined,
    shares: () => undefined,
    prepareShutdown: async () => undefined,
    powerOff: () => undefined,
    trimMemory: () => void calls.push('trimMemory'),
    execRoot(spec: SetupSpec) {
      const n = calls.filter((c) => c.startsWith('execRoot')).length + 1;
      calls.push(`execRoot ${n} ${spec.execRoot ?? ''}`);
      return {
        enter<T>(start: () => T): T {
          calls.push(`enter ${n}`);
          const started = start();
          calls.push(`left ${n}`);
          return started;
        },
        remove: () => void calls.push(`remove ${n}`),
      };
    },
  };
}

async function code(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  return err instanceof AgentRequestError ? err.code : `no AgentRequestError: ${String(err)}`;
}

describe('setupRoot, then setup', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('a setup with the same root only configures the run (hostname, volumes) in it', async () => {
    const system = recordingSystem();
    h = await startHarness(250, system);
    await h.client.setupRoot({});
    await h.client.setup({ hostname: 'box', volumes: [{ tag: 'vol0', path: '/data' }] });
    expect(system.calls).toEqual([
      'setupRoot {}',
      'configure {"hostname":"box","volumes":[{"tag":"vol0","path":"/data","readOnly":false}]}',
    ]);
    expect(await code(h.client.setup({ hostname: 'again' }))).toBe('bad-request');
  });

  it('refuses a setup for another root, and a second setupRoot, changing nothing', async () => {
    const system = recordingSystem();
    h = await startHarness(250, system);
    await h.client.setupRoot({ upperSizeMiB: 64 });
    expect(await code(h.client.setup({}))).toBe('bad-request');
    expect(await code(h.client.setup({ image: { device: { serial: 'smolvm-image' } }, upperSizeMiB: 64 }))).toBe(
      'bad-request',
    );
    expect(await code(h.client.setupRoot({ upperSizeMiB: 64 }))).toBe('bad-request');
    await h.client.setup({ upperSizeMiB: 64, hostname: 'ok' });
    expect(system.calls).toEqual(['setupRoot {"upperSizeMiB":64}', 'configure {"hostname":"ok","upperSizeMiB":64}']);
  });

  it('an exec before the run setup waits for the root, and the run can still be configured after it', async () => {
    const system = recordingSystem(150);
    h = await startHarness(250, system);
    const root = h.client.setupRoot({});
    const session = await h.client.exec({ argv: ['true'] });
    system.calls.push('exec started');
    expect((await session.exit).code).toBe(0);
    await root;
    await h.client.setup({ hostname: 'later' });
    expect(system.calls).toEqual(['setupRoot {}', 'exec started', 'configure {"hostname":"later"}']);
  });

  it("execRoot 'fresh': each exec is started inside a root of its own, removed once it ended", async () => {
    const system = recordingSystem();
    h = await startHarness(250, system);
    await h.client.setup({ execRoot: 'fresh' });
    const first = await h.client.exec({ argv: ['sh', '-c', 'sleep 0.5; exit 3'] });
    system.calls.push('first started');
    expect((await first.exit).code).toBe(3);
    // A command that is not there: its root goes at once.
    expect(await code(h.client.exec({ argv: ['no-such-command'] }))).toBe('command-not-found');
    await new Promise((r) => setTimeout(r, 100));
    expect(system.calls).toEqual([
      'setup {"execRoot":"fresh"}',
      'execRoot 1 fresh',
      'enter 1',
      'left 1',
      'first started',
      'remove 1',
      'execRoot 2 fresh',
      'enter 2',
      'remove 2',
    ]);
  });

  it("execRoot 'fresh': an exec waits for the file requests in flight before it changes root", async () => {
    const system = recordingSystem();
    h = await startHarness(250, system);
    await h.client.setup({ execRoot: 'fresh' });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-fresh-'));
    try {
      const source = new PassThrough();
      const upload = h.client.putFile({ path: path.join(dir, 'f'), size: 4, mode: 0o644 }, source);
      source.write('ab');
      await new Promise((r) => setTimeout(r, 200));
      const exec = h.client.exec({ argv: ['true'] });
      await new Promise((r) => setTimeout(r, 300));
      system.calls.push('upload ends');
      source.end('cd');
      await upload;
      expect((await (await exec).exit).code).toBe(0);
      expect(system.calls.slice(1, 3)).toEqual(['upload ends', 'execRoot 1 fresh']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('drops the page cache once idle after a request, never while one runs', async () => {
    const system = recordingSystem();
    h = await startHarness(250, system, 300);
    const session = await h.client.exec({ argv: ['sleep', '1'] });
    await new Promise((r) => setTimeout(r, 700));
    expect(system.calls).not.toContain('trimMemory');
    expect((await session.exit).code).toBe(0);
    await new Promise((r) => setTimeout(r, 1000));
    expect(system.calls.filter((c) => c === 'trimMemory')).toHaveLength(1);
  });

  it('prepareSnapshot runs after setupRoot, and is refused once a run was set up', async () => {
    const system = recordingSystem();
    h = await startHarness(250, system);
    await h.client.setupRoot({});
    await h.client.prepareSnapshot();
    await h.client.setup({});
    expect(await code(h.client.prepareSnapshot())).toBe('bad-request');
  });

  it('an agent outside a VM (no guest system) cannot set up a root', async () => {
    h = await startHarness();
    expect(await code(h.client.setupRoot({}))).toBe('unsupported');
  });
});

describe('warmExecPath', () => {
  it('runs one exec through a client and server of its own and leaves nothing listening', async () => {
    const seen: string[][] = [];
    const inner = createHandlers({ busybox: hostBusybox() });
    await warmExecPath({
      ...inner,
      exec: async (req, io) => {
        seen.push(req.argv);
        return inner.exec(req, io);
      },
    });
    expect(seen).toEqual([['true']]);
  });

  it("also sends a machine's setup, which the root-less handlers get parsed and refuse (nothing is set up)", async () => {
    const setups: unknown[] = [];
    const inner = createHandlers({ busybox: hostBusybox() });
    await warmExecPath({
      ...inner,
      setup: async (spec) => {
        setups.push(spec);
        return inner.setup?.(spec);
      },
    });
    expect(setups).toEqual([expect.objectContaining({ upper: expect.any(Object), workspace: expect.any(Object) })]);
  });

  it('reports a failing exec instead of hanging', async () => {
    const inner = createHandlers({ busybox: hostBusybox() });
    const err = await warmExecPath({
      ...inner,
      exec: async () => Promise.reject(new AgentRequestError('exec', 'internal', 'no')),
    }).catch((e: unknown) => e);
    expect((err as AgentRequestError).code).toBe('internal');
  });
});
