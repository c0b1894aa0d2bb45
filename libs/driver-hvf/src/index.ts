// Public API of @smolvm/driver-hvf: macOS driver: QEMU virt machine with -accel hvf (arm64)
export {};
