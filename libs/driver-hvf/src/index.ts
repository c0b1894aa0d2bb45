// Public API of @smolvm/driver-hvf: the macOS driver (QEMU virt + Hypervisor.framework, arm64).
// Importing it registers the `hvf` driver with the @smolvm/driver-api registry.
import { registerDriver } from '@smolvm/driver-api';
import { createHvfDriver } from './driver';

export { createHvfDriver, HVF_DRIVER_NAME, type HvfDriverOptions } from './driver';
export { virtHvfTarget } from './target';

registerDriver(createHvfDriver());
