// Public API of @smolvm/driver-kvm: the Linux driver (QEMU microvm; KVM, else TCG with a
// warning). Importing it registers the `kvm` driver with the @smolvm/driver-api registry.
import { registerDriver } from '@smolvm/driver-api';
import { createKvmDriver } from './driver';
// Its early start too, for callers that load the whole driver.
import './early-start';

export { createKvmDriver, KVM_DRIVER_NAME, type KvmDriverOptions } from './driver';
export { probeKvmDevice, probeKvmDeviceSync, type KvmStatus, type KvmProbeOptions } from './kvm-device';
export { microvmTarget, type Accelerator } from './target';

registerDriver(createKvmDriver());
