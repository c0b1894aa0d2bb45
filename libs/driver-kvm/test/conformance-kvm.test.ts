// The driver conformance suite with KVM, where this host has a usable /dev/kvm. Elsewhere the
// suite is reported as skipped, with the reason in its title; the TCG suite still runs.
import { runDriverConformance } from '@smolvm/driver-api/conformance';
import { createKvmDriver, probeKvmDeviceSync } from '../src';
import { timingCollector } from './timings';

const kvm = probeKvmDeviceSync();

if (kvm.usable) {
  runDriverConformance({
    title: 'driver-kvm conformance, accelerator kvm',
    createDriver: () => createKvmDriver({ accel: 'kvm' }),
    ...timingCollector('kvm'),
  });
} else {
  describe.skip(`driver-kvm conformance, accelerator kvm: skipped, ${kvm.reason}`, () => {
    it('needs a usable /dev/kvm', () => undefined);
  });
}
