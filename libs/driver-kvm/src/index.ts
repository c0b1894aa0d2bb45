// Public API of @smolvm/driver-kvm: Linux driver: QEMU microvm with KVM (falls back to TCG with a warning)
export {};
