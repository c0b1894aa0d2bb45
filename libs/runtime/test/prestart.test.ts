// Early starts with a setup (a machine's supervisor): what reaches the guest's channel, and when
// nothing does. The driver's part is played by a client that connects to the agent socket the
// way QEMU's chardev does.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { FrameDecoder } from '@smolvm/agent-protocol';
import { agentSocketPath, discardParts, parseRunRecipe, prestartRun, type RunRecipe } from '../src/prestart';

const SETUP = { hostname: 'dev', upper: { device: { serial: 'smolvm-overlay' }, fstype: 'ext4' } };

let xdg: string;
let env: NodeJS.ProcessEnv;

beforeEach(() => {
  xdg = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-prestart-test-'));
  env = { ...process.env, XDG_RUNTIME_DIR: xdg };
});

afterEach(() => fs.rmSync(xdg, { recursive: true, force: true }));

/** A fake QEMU: connects to the run's agent socket and collects what it is sent. */
function fakeStart(received: Buffer[], sockets: net.Socket[]) {
  return (_restore: unknown, runDir: string) => {
    const socket = net.connect(agentSocketPath(runDir));
    socket.on('data', (d: Buffer) => received.push(d));
    socket.on('error', () => undefined);
    sockets.push(socket);
    return { kind: 'fake', hold: () => undefined, discard: () => socket.destroy() };
  };
}

const recipe: RunRecipe = { v: 1, driver: 'fake', restore: {}, setup: SETUP };

async function settle(ms = 100): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

describe('prestartRun with a setup', () => {
  it('sends the hello, the clock, fresh entropy and the recorded setup once the VM connects, if it may run', async () => {
    const received: Buffer[] = [];
    const sockets: net.Socket[] = [];
    const run = prestartRun(recipe, fakeStart(received, sockets), env, { run: true });
    try {
      expect(run).toBeDefined();
      await settle();
      const frames = new FrameDecoder(1 << 20).push(Buffer.concat(received)).map((f) => f.header);
      expect(frames.map((f) => f.t)).toEqual(['hello', 'req', 'req', 'req']);
      expect(frames.slice(1).map((f) => [f.id, f.op])).toEqual([
        [1, 'setTime'],
        [2, 'reseed'],
        [3, 'setup'],
      ]);
      expect(Math.abs((frames[1].args as { epochMs: number }).epochMs - Date.now())).toBeLessThan(10_000);
      expect(Buffer.from((frames[2].args as { entropy: string }).entropy, 'base64')).toHaveLength(64);
      expect(frames[3].args).toEqual(SETUP);
      const parts = run?.take();
      expect(parts?.setup).toEqual(SETUP);
      if (parts) discardParts(parts);
    } finally {
      run?.discard();
      for (const s of sockets) s.destroy();
    }
  });

  it('sends nothing for a start whose guest waits paused (a run), nor for a recipe without a setup', async () => {
    for (const [r, run] of [
      [recipe, false],
      [{ ...recipe, setup: undefined }, true],
    ] as const) {
      const received: Buffer[] = [];
      const sockets: net.Socket[] = [];
      const pre = prestartRun(r, fakeStart(received, sockets), env, { run });
      await settle();
      expect(received).toEqual([]);
      const parts = pre?.take();
      expect(parts).toBeDefined();
      expect(parts?.setup).toBeUndefined();
      if (parts) discardParts(parts);
      for (const s of sockets) s.destroy();
    }
  });
});

describe('prestartRun with the snapshot state to check', () => {
  const withState = (bytes: string) => {
    const file = path.join(xdg, 'state');
    fs.writeFileSync(file, 'device state');
    const sha256 = crypto.createHash('sha256').update(bytes).digest('hex');
    return { ...recipe, state: { file, sha256 } };
  };

  it('starts a guest that runs at once only if the device state still has its recorded bytes', async () => {
    const starts: unknown[] = [];
    const start = (restore: unknown) => {
      starts.push(restore);
      return { kind: 'fake', hold: () => undefined, discard: () => undefined };
    };
    // Damaged (other bytes) or gone: nothing is started, nothing is left, the taker restores as usual.
    expect(prestartRun(withState('other bytes'), start, env, { run: true })).toBeUndefined();
    const gone = withState('device state');
    fs.rmSync(gone.state.file);
    expect(prestartRun(gone, start, env, { run: true })).toBeUndefined();
    expect(starts).toEqual([]);
    expect(fs.readdirSync(xdg)).toEqual([]);
    // Intact: started. A paused guest is checked by its taker before it runs, as before.
    for (const run of [true, false]) {
      const pre = prestartRun(withState('device state'), start, env, { run });
      expect(pre).toBeDefined();
      pre?.discard();
    }
    expect(prestartRun({ ...withState('other bytes') }, start, env, { run: false })).toBeDefined();
    expect(starts).toHaveLength(3);
  });
});

describe('parseRunRecipe', () => {
  it('takes a setup object and refuses any other kind of setup', () => {
    expect(parseRunRecipe({ ...recipe })).toEqual(recipe);
    expect(parseRunRecipe({ v: 1, driver: 'fake', restore: {} })).toBeDefined();
    for (const setup of ['x', 1, null, [SETUP]]) expect(parseRunRecipe({ ...recipe, setup })).toBeUndefined();
    const state = { file: '/x/state', sha256: 'ab' };
    expect(parseRunRecipe({ ...recipe, state })).toEqual({ ...recipe, state });
    for (const bad of ['x', null, { file: 1, sha256: 'ab' }, { file: '/x/state' }])
      expect(parseRunRecipe({ ...recipe, state: bad })).toBeUndefined();
  });
});
