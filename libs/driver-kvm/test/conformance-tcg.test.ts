// The driver conformance suite under TCG: runs on every host, KVM or not (SMOLVM_ACCEL=tcg's path).
import { runDriverConformance } from '@smolvm/driver-api/conformance';
import { createKvmDriver } from '../src';
import { timingCollector } from './timings';

runDriverConformance({
  title: 'driver-kvm conformance, accelerator tcg',
  createDriver: () => createKvmDriver({ accel: 'tcg' }),
  ...timingCollector('tcg'),
});
