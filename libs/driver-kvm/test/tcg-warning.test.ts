// The TCG fallback warning: once per process, on start (not on probe), suppressible.
import { InvalidVmSpecError, type VmSpec } from '@smolvm/driver-api';
import { createKvmDriver } from '../src';

// Fails validation right after the warning decision: no VM is needed to see the warning.
const invalid: VmSpec = {
  kernel: '/nonexistent',
  cpus: 0,
  memoryMiB: 1,
  agent: { socketPath: '/x' },
  consoleLog: '/x',
  runDir: '/x',
};
const env = { PATH: process.env.PATH };

describe('TCG warning', () => {
  it('is not printed when quiet, or with SMOLVM_NO_TCG_WARNING=1, or when TCG was asked for', async () => {
    const seen: string[] = [];
    const warn = (m: string) => seen.push(m);
    for (const driver of [
      createKvmDriver({ kvmDevice: '/nonexistent', quiet: true, warn, env }),
      createKvmDriver({ kvmDevice: '/nonexistent', warn, env: { ...env, SMOLVM_NO_TCG_WARNING: '1' } }),
      createKvmDriver({ accel: 'tcg', warn, env }),
    ]) {
      await expect(driver.start(invalid)).rejects.toBeInstanceOf(InvalidVmSpecError);
    }
    expect(seen).toEqual([]);
  });

  it('is printed once per process, with the reason and how to silence it', async () => {
    const seen: string[] = [];
    const warn = (m: string) => seen.push(m);
    const a = createKvmDriver({ kvmDevice: '/nonexistent', warn, env });
    const b = createKvmDriver({ kvmDevice: '/nonexistent', warn, env });
    await expect(a.start(invalid)).rejects.toBeInstanceOf(InvalidVmSpecError);
    await expect(a.start(invalid)).rejects.toBeInstanceOf(InvalidVmSpecError);
    await expect(b.start(invalid)).rejects.toBeInstanceOf(InvalidVmSpecError);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatch(
      /^smolvm: warning: KVM is not usable \(no \/nonexistent: this host has no KVM\); VMs run under TCG/,
    );
    expect(seen[0]).toContain('SMOLVM_NO_TCG_WARNING=1');
  });

  it('goes to stderr by default', async () => {
    const writes: string[] = [];
    const spy = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      writes.push(String(chunk));
      return true;
    });
    try {
      let fresh: typeof import('../src') | undefined;
      jest.isolateModules(() => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        fresh = require('../src') as typeof import('../src');
      });
      await expect(fresh?.createKvmDriver({ kvmDevice: '/nonexistent', env }).start(invalid)).rejects.toThrow();
    } finally {
      spy.mockRestore();
    }
    expect(writes.join('')).toMatch(/^smolvm: warning: KVM is not usable/);
  });
});
