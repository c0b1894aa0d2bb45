// How driver-hvf runs QEMU on Apple silicon: the `virt` machine (microvm is x86-only) with the
// host CPU under Hypervisor.framework. Devices stay virtio-mmio, which virt provides and
// describes in its device tree, so the guest needs no PCI.
import type { QemuTarget } from '@smolvm/qemu';

// reboot/panic handling as on x86: PSCI reset + -no-reboot ends QEMU. The console is the PL011.
const KERNEL_ARGS = ['quiet', 'panic=-1', 'init_on_alloc=0'];

export function virtHvfTarget(binary = 'qemu-system-aarch64'): QemuTarget {
  return {
    binary,
    machine: 'virt',
    // GICv3: needed for more than 8 vCPUs; QEMU emulates it for hvf.
    machineOptions: { 'gic-version': '3' },
    accel: 'hvf',
    cpu: 'host',
    consoleDevice: 'ttyAMA0',
    kernelArgs: KERNEL_ARGS,
  };
}
