// What a driver decides about QEMU: binary, machine, accelerator, CPU model, console device and
// the kernel arguments that go with them. The spec says what to run; the target says how.
export interface QemuTarget {
  /** Executable name (looked up in PATH) or absolute path: qemu-system-x86_64, qemu-system-aarch64. */
  binary: string;
  /** microvm (x86-64) or virt (arm64). */
  machine: string;
  machineOptions?: Record<string, string | boolean>;
  /** kvm, tcg, hvf. */
  accel: string;
  accelOptions?: Record<string, string | number | boolean>;
  /** host, max... */
  cpu: string;
  /** The guest's name for the serial console the log captures: ttyS0 (x86), ttyAMA0 (arm64 virt). */
  consoleDevice: string;
  /** The driver's kernel arguments; the spec's own come after them. */
  kernelArgs: string[];
  /** Run QEMU under its seccomp filter (argv.ts SANDBOX). Linux builds have it, macOS ones do not. */
  sandbox?: boolean;
  /** How many virtio-mmio devices the machine can take (microvm: 8); absent: no known limit. */
  virtioTransports?: number;
}

/** Files the launcher keeps in the spec's runDir. */
export interface RunFiles {
  qmpSocket: string;
}
