// SIGKILL the process that started a hypervisor (QEMU here, idle): it must go too
// (docs/architecture.md#processes-and-state: no daemon, nothing left).
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { defaultSupervision, findExecutable, spawnSupervised } from '../src';
import { isRunning, waitUntil } from './helpers';

const workspace = path.resolve(__dirname, '../../..');
const fixture = path.join(__dirname, 'fixtures/supervised-parent.ts');
const linuxWithSetpriv = process.platform === 'linux' && !!findExecutable('setpriv');

/** Starts the fixture parent; resolves with its pid and its QEMU's pid. */
async function startParent(mode: string): Promise<{ parent: number; qemu: number }> {
  const child = spawn(process.execPath, [path.join(workspace, 'tools/run-ts.mjs'), fixture, mode], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = readline.createInterface({ input: child.stdout });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`fixture exited (${code}) before reporting`)));
  });
  lines.close();
  return JSON.parse(first) as { parent: number; qemu: number };
}

describe('QEMU gets no privileges to spare', () => {
  it('pdeathsig: no new privileges; started by root, no capability at all', async () => {
    if (!linuxWithSetpriv) return;
    const proc = spawnSupervised('grep', ['-E', '^(NoNewPrivs|CapEff|CapPrm|CapBnd|CapAmb):', '/proc/self/status'], {
      supervision: 'pdeathsig',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    proc.child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((resolve) => proc.child.once('close', resolve));
    const status = Object.fromEntries(
      out
        .trim()
        .split('\n')
        .map((l) => l.split(':\t')),
    );
    expect(status.NoNewPrivs).toBe('1');
    const none = '0000000000000000';
    if (process.getuid?.() === 0)
      expect([status.CapEff, status.CapPrm, status.CapBnd, status.CapAmb]).toEqual([none, none, none, none]);
  });
});

describe('QEMU never outlives its parent', () => {
  it('uses pdeathsig where setpriv is available', () => {
    expect(defaultSupervision()).toBe(linuxWithSetpriv ? 'pdeathsig' : 'watchdog');
  });

  it.each(['pdeathsig', 'watchdog'])(
    '%s: SIGKILL of the parent ends QEMU',
    async (mode) => {
      if (mode === 'pdeathsig' && !linuxWithSetpriv) return;
      const { parent, qemu } = await startParent(mode);
      expect(isRunning(qemu)).toBe(true);
      const killedAt = performance.now();
      process.kill(parent, 'SIGKILL');
      const gone = await waitUntil(() => !isRunning(qemu), 5_000, 10);
      if (!gone) process.kill(qemu, 'SIGKILL');
      expect(gone).toBe(true);
      // Informational: how long QEMU survived its parent.
      console.log(`${mode}: QEMU gone ${Math.round(performance.now() - killedAt)} ms after its parent was SIGKILLed`);
    },
    30_000,
  );

  it('control: an unsupervised QEMU does survive its parent (so the test above can fail)', async () => {
    const { parent, qemu } = await startParent('none');
    process.kill(parent, 'SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const survived = isRunning(qemu);
    process.kill(qemu, 'SIGKILL');
    expect(survived).toBe(true);
  }, 30_000);
});
