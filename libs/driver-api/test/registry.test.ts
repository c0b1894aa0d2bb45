import {
  DriverRegistry,
  DriverUnavailableError,
  NoUsableDriverError,
  UnknownDriverError,
  defaultRegistry,
  registerDriver,
  type Driver,
  type ProbeResult,
} from '../src';
import { formatError } from '@smolvm/common';

function fake(name: string, probe: ProbeResult | (() => Promise<ProbeResult>)): Driver & { probes: number } {
  const driver = {
    name,
    probes: 0,
    probe: async () => {
      driver.probes++;
      return typeof probe === 'function' ? probe() : probe;
    },
    start: async () => {
      throw new Error('not in these tests');
    },
  };
  return driver;
}

const up: ProbeResult = {
  available: true,
  accelerator: 'fake',
  features: {
    agentTransport: 'virtio-serial',
    shares: 'none',
    shareOwnership: false,
    diskLookup: 'order',
    diskRanges: false,
    nic: 'none',
    snapshot: false,
  },
};
const down = (reason: string, remedy?: string): ProbeResult => ({ available: false, reason, remedy });

describe('DriverRegistry.select', () => {
  it('without a name: the first registered driver whose probe succeeds, later ones not probed', async () => {
    const reg = new DriverRegistry();
    const a = fake('a', down('no a'));
    const b = fake('b', up);
    const c = fake('c', up);
    [a, b, c].forEach((d) => reg.register(d));
    const selected = await reg.select({ env: {} });
    expect(selected.driver.name).toBe('b');
    expect(selected.probe.accelerator).toBe('fake');
    expect(c.probes).toBe(0);
  });

  it('a name picks that driver, even if an earlier one would work', async () => {
    const reg = new DriverRegistry();
    reg.register(fake('a', up));
    reg.register(fake('b', up));
    expect((await reg.select({ name: 'b', env: {} })).driver.name).toBe('b');
  });

  it('SMOLVM_DRIVER names the driver when the caller did not; an explicit name wins over it', async () => {
    const reg = new DriverRegistry();
    reg.register(fake('a', up));
    reg.register(fake('b', up));
    expect((await reg.select({ env: { SMOLVM_DRIVER: 'b' } })).driver.name).toBe('b');
    expect((await reg.select({ name: 'a', source: '--driver', env: { SMOLVM_DRIVER: 'b' } })).driver.name).toBe('a');
  });

  it('an unknown name is a usage error listing the known drivers and where the name came from', async () => {
    const reg = new DriverRegistry();
    reg.register(fake('kvm', up));
    reg.register(fake('hvf', down('macOS only')));
    const err = await reg.select({ env: { SMOLVM_DRIVER: 'xen' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnknownDriverError);
    expect(formatError(err)).toBe("error: unknown driver 'xen' (from SMOLVM_DRIVER); use one of: kvm, hvf");
    expect((err as UnknownDriverError).exitCode).toBe(2);
  });

  it('a named driver that is unavailable fails with its reason and remedy, not a fallback', async () => {
    const reg = new DriverRegistry();
    reg.register(fake('kvm', up));
    reg.register(fake('hvf', down('hvf is only available on macOS', 'on Linux use the kvm driver')));
    const err = await reg.select({ name: 'hvf', env: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DriverUnavailableError);
    expect(formatError(err)).toBe(
      "error: driver 'hvf' is not usable on this host: hvf is only available on macOS; on Linux use the kvm driver",
    );
  });

  it('nothing usable: one error with every reason, and the first remedy', async () => {
    const reg = new DriverRegistry();
    reg.register(fake('kvm', down('qemu-system-x86_64 not found', 'run tools/setup')));
    reg.register(fake('hvf', down('hvf is only available on macOS')));
    const err = await reg.select({ env: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoUsableDriverError);
    expect((err as NoUsableDriverError).reasons.map((r) => r.driver)).toEqual(['kvm', 'hvf']);
    expect(formatError(err)).toContain('kvm: qemu-system-x86_64 not found; hvf: hvf is only available on macOS');
    expect(formatError(err)).toContain('; run tools/setup');
  });

  it('a probe that throws counts as unavailable instead of breaking selection', async () => {
    const reg = new DriverRegistry();
    reg.register(fake('broken', () => Promise.reject(new Error('boom'))));
    reg.register(fake('ok', up));
    expect((await reg.select({ env: {} })).driver.name).toBe('ok');
    await expect(reg.select({ name: 'broken', env: {} })).rejects.toThrow(/probe failed: boom/);
  });

  it('registering a name again replaces it in place; bad names are refused', () => {
    const reg = new DriverRegistry();
    reg.register(fake('a', up));
    reg.register(fake('b', up));
    const a2 = fake('a', down('x'));
    reg.register(a2);
    expect(reg.list().map((d) => d.name)).toEqual(['a', 'b']);
    expect(reg.get('a')).toBe(a2);
    reg.unregister('a');
    expect(reg.list().map((d) => d.name)).toEqual(['b']);
    expect(() => reg.register(fake('Bad Name', up))).toThrow(/lowercase/);
  });
});

describe('the default registry', () => {
  it('is one per process, shared through globalThis', () => {
    const d = fake('zz-test', up);
    registerDriver(d);
    expect(defaultRegistry().get('zz-test')).toBe(d);
    expect((globalThis as Record<symbol, unknown>)[Symbol.for('smolvm.driver-registry')]).toBe(defaultRegistry());
    defaultRegistry().unregister('zz-test');
  });
});
