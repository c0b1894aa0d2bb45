// How driver-kvm runs QEMU: microvm without ACPI, PVH-booted vmlinux, and the kernel arguments
// each accelerator needs (docs/architecture.md#guest-boot, tools/kernel/README.md).
import type { QemuTarget } from '@smolvm/qemu';

export type Accelerator = 'kvm' | 'tcg';

// quiet: console output costs boot time. reboot=t + panic=-1: a poweroff or a panic becomes a
// triple-fault reset, which -no-reboot turns into QEMU exiting (no ACPI to power off with).
// init_on_alloc=0: zeroing every allocation is slow and the VM is the boundary.
// random.trust_cpu=on: no entropy wait at boot (RDRAND under both accelerators).
const COMMON_KERNEL_ARGS = ['quiet', 'reboot=t', 'panic=-1', 'init_on_alloc=0', 'random.trust_cpu=on'];

const TCG_TB_SIZE_MIB = 32;

// microvm without its second IO-APIC has 8 virtio-mmio transports (QEMU 7.2).
const MICROVM_VIRTIO_TRANSPORTS = 8;

export function microvmTarget(accel: Accelerator, binary = 'qemu-system-x86_64'): QemuTarget {
  if (accel === 'kvm') {
    return {
      binary,
      machine: 'microvm',
      machineOptions: { acpi: 'off' },
      accel: 'kvm',
      // The host CPU model: kvmclock and every host feature, nothing to emulate.
      cpu: 'host',
      consoleDevice: 'ttyS0',
      kernelArgs: COMMON_KERNEL_ARGS,
      sandbox: true,
      virtioTransports: MICROVM_VIRTIO_TRANSPORTS,
    };
  }
  return {
    binary,
    machine: 'microvm',
    machineOptions: { acpi: 'off' },
    accel: 'tcg',
    // TCG's translation cache (QEMU 7.2's default: up to 1 GiB, held as the guest runs new code)
    // was the largest part of an idle machine's host memory (~76 MiB, 150 MiB after a varied
    // workload). 32 MiB holds a busy guest's working set: in one run, a mixed workload took as
    // long as with the default and QEMU's RSS halved; at 16 MiB and below retranslation shows
    // (tools/bench/memory.ts, docs/architecture.md#driver-contract).
    accelOptions: { 'tb-size': TCG_TB_SIZE_MIB },
    cpu: 'max',
    consoleDevice: 'ttyS0',
    // Calibrating the local APIC timer under emulation takes ~300 ms; the PIT (present because
    // acpi=off keeps it) serves instead. Only safe with a PIT, hence only here.
    kernelArgs: [...COMMON_KERNEL_ARGS, 'nolapic_timer'],
    sandbox: true,
    virtioTransports: MICROVM_VIRTIO_TRANSPORTS,
  };
}
