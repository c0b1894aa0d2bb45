// The conformance suite's gating: which tests a driver's declared features select, and which
// spec requests it must refuse. The suite itself boots VMs (driver-kvm runs it).
import * as api from '../src';
import * as conformance from '../src/conformance';
import { meets, needs, undeclaredRequests } from '../src/conformance/gate';
import type { DriverFeatures } from '../src';

const qemu: DriverFeatures = {
  agentTransport: 'virtio-serial',
  shares: '9p',
  shareOwnership: true,
  diskLookup: 'serial',
  diskRanges: true,
  nic: 'unix-stream',
  snapshot: true,
};
const firecrackerLike: DriverFeatures = {
  agentTransport: 'vsock',
  shares: 'none',
  shareOwnership: false,
  diskLookup: 'order',
  diskRanges: false,
  nic: 'tap',
  snapshot: true,
};

describe('conformance gating', () => {
  it('a test runs where its feature is declared, and only there', () => {
    expect(meets(qemu, needs('shares', '9p'))).toBe(true);
    expect(meets(firecrackerLike, needs('shares', '9p'))).toBe(false);
    expect(meets({ ...qemu, shares: 'virtio-fs' }, needs('shares', '9p', 'virtio-fs'))).toBe(true);
    expect(meets(firecrackerLike, needs('diskLookup', 'serial'))).toBe(false);
    expect(meets(firecrackerLike, needs('snapshot', true))).toBe(true);
    expect(meets(undefined, needs('snapshot', true))).toBe(false);
  });

  it('names the spec fields a driver must refuse: none for QEMU, each missing one otherwise', () => {
    expect(undeclaredRequests(qemu)).toEqual([]);
    expect(undeclaredRequests(firecrackerLike).map((r) => r.field)).toEqual(['shares', 'network', 'disks[0].range']);
    expect(undeclaredRequests({ ...qemu, shareOwnership: false }).map((r) => r.field)).toEqual([
      'shares[0].hostOwnership',
    ]);
  });

  it('is a test-only entry point, not part of the production index', () => {
    expect(typeof conformance.runDriverConformance).toBe('function');
    expect(Object.keys(api)).not.toEqual(expect.arrayContaining(['runDriverConformance']));
    expect(Object.keys(api).filter((k) => k in conformance)).toEqual([]);
  });
});
