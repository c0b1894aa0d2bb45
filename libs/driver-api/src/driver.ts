// The contract between smolvm and a hypervisor (DESIGN §2). Required: probe + start + a handle.
// Everything else is an optional capability discovered at run time. See README.md.
import type { VmSpec } from './spec';

export interface ProbeResult {
  /** True when start() can be expected to work on this host. */
  available: boolean;
  /** How VMs will run when available: e.g. 'kvm', 'tcg', 'hvf'. */
  accelerator?: string;
  /** Why it is unavailable, or a warning when it is available in a degraded mode (TCG). */
  reason?: string;
  /** What the user can do about `reason`, phrased as an instruction. */
  remedy?: string;
  /** Named booleans for what this host/driver pair supports (e.g. kvm, snapshot, network). */
  features: Record<string, boolean>;
}

/**
 * How a VM ended.
 * - guest:   the guest rebooted or panicked: how a guest ends its VM (smolvm VMs never reboot;
 *            without ACPI a guest power-off merely halts the CPU, so guests use reboot(2))
 * - stopped: the host asked it to end (stop(), or a termination signal to the hypervisor)
 * - killed:  it was killed outright (kill(), or SIGKILL from anyone)
 * - crashed: the hypervisor failed on its own, or the VM hit a state it cannot leave (QEMU's
 *            internal-error: the driver ends such a VM instead of leaving it paused forever)
 */
export type VmExitReason = 'guest' | 'stopped' | 'killed' | 'crashed';

export interface VmExit {
  reason: VmExitReason;
  /** Hypervisor process exit status; null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The hypervisor's own word for it when known (QEMU: guest-shutdown, guest-reset, internal-error...). */
  detail?: string;
  /** When it crashed: the last lines the hypervisor printed, for the error message. */
  hypervisorOutput?: string[];
}

export interface StopOptions {
  /**
   * How long to let the VM end by itself first (the caller has usually just asked the guest to
   * power off through the agent). Then the driver ends it: a clean hypervisor quit, then a
   * termination signal, then SIGKILL. Default 0.
   */
  timeoutMs?: number;
}

export interface VmHandle {
  /** The hypervisor process. Record it with its start time (@smolvm/common processStartTime). */
  readonly pid: number;
  /** Resolves once the VM has ended and the driver has removed its files. Never rejects. */
  wait(): Promise<VmExit>;
  /** Ends the VM, gracefully as far as the hypervisor allows. Idempotent; never rejects. */
  stop(options?: StopOptions): Promise<VmExit>;
  /** Ends the VM at once (SIGKILL). Idempotent; never rejects. */
  kill(): Promise<VmExit>;
  /**
   * QEMU-based drivers only: one raw QMP command. An escape hatch for diagnostics and
   * experiments; core features must be driver capabilities instead.
   */
  qmp?(command: string, args?: Record<string, unknown>): Promise<unknown>;
}

/** Save a running VM and start new ones from the saved state (DESIGN §3: restore beats boot). */
export interface SnapshotCapability {
  save(handle: VmHandle, stateDir: string): Promise<void>;
  restore(spec: VmSpec, stateDir: string): Promise<VmHandle>;
}

export interface ResizeCapability {
  /** Grows a disk of a running VM after its file was grown. */
  resizeDisk(handle: VmHandle, diskId: string, sizeBytes: number): Promise<void>;
}

export interface BalloonCapability {
  setGuestMemoryMiB(handle: VmHandle, memoryMiB: number): Promise<void>;
}

export interface DriverCapabilities {
  snapshot?: SnapshotCapability;
  resize?: ResizeCapability;
  balloon?: BalloonCapability;
}

export interface Driver {
  /** Stable, lowercase; what --driver, the Smolfile and SMOLVM_DRIVER name. */
  readonly name: string;
  /** Cheap, side-effect free, never throws: everything it finds goes into the result. */
  probe(): Promise<ProbeResult>;
  /**
   * Resolves once the hypervisor accepted the spec and the guest is executing; the agent is not
   * ready yet (that is the caller's business). Rejects with a typed error, leaving no process and
   * no file of its own behind.
   */
  start(spec: VmSpec): Promise<VmHandle>;
  readonly capabilities?: DriverCapabilities;
}
