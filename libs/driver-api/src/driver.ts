// The contract between smolvm and a hypervisor (docs/architecture.md#driver-contract). Required: probe + start + a
// handle. Everything else is an optional capability discovered at run time. See README.md.
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
  /** The wiring this driver gives a guest here. Present whenever `available`. */
  features?: DriverFeatures;
  /**
   * Names the CPU the guest sees, for caches of CPU-specific guest code (the agent's V8 startup
   * blob only loads on the CPU it was built on). Present whenever `available`.
   */
  guestCpu?: string;
}

/**
 * How a driver wires a guest: what the caller may put in a VmSpec (validateVmSpec refuses the
 * rest) and how the guest finds each part (the caller turns it into the guest's setup).
 */
export interface DriverFeatures {
  /**
   * How the guest agent reaches the host; either way the driver connects the guest's channel to
   * `spec.agent.socketPath`, where the caller listens. 'virtio-serial': a port named
   * `smolvm.agent`. 'vsock': the guest connects to the host (CID 2) on vsock port 1024.
   */
  agentTransport: 'virtio-serial' | 'vsock';
  /** How `spec.shares` reach the guest: 9p (mount tag = share tag), virtio-fs, or not at all. */
  shares: '9p' | 'virtio-fs' | 'none';
  /** Shares may carry the host files' owners and modes (`HostShareSpec.hostOwnership`). */
  shareOwnership: boolean;
  /**
   * How the guest tells disks apart: 'serial' (the disk id is the virtio serial, in
   * /sys/block/vdX/serial), or 'order' only (the n-th disk is /dev/vd<a+n>).
   */
  diskLookup: 'serial' | 'order';
  /** A disk may be a byte range of a file (`BlockDeviceSpec.range`). */
  diskRanges: boolean;
  /**
   * The NIC: 'unix-stream' (frames to `spec.network.socketPath`, 4-byte length prefixed), 'tap',
   * or none at all (then `spec.network` is refused).
   */
  nic: 'unix-stream' | 'tap' | 'none';
  /** `capabilities.snapshot` works on this host. */
  snapshot: boolean;
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
}

/**
 * Boot snapshots (docs/architecture.md#warm-starts: restoring a ready VM beats booting one). A VM that is to be saved
 * is started with `startSaveable` instead of `start`; once its guest reached the state worth keeping,
 * `save` writes that state into a directory the caller owns; `restore` starts any number of new
 * VMs from it, each copy-on-write. What a snapshot is valid for (kernel, images, shape) is the
 * caller's business — it keys its cache by `fingerprint()` plus everything in the spec.
 */
export interface SnapshotCapability {
  /** Everything on the driver's side a snapshot depends on (hypervisor build, accelerator, CPU model). Cheap. */
  fingerprint(): Promise<string>;
  /** Like `Driver.start`, for a VM that `save` can save into `stateDir` (an empty, private directory). */
  startSaveable(spec: VmSpec, stateDir: string): Promise<VmHandle>;
  /**
   * Pauses a VM from `startSaveable` and writes its state into `stateDir` crash-safely. The VM
   * stays paused; the caller ends it (kill). Throws SnapshotError.
   */
  save(handle: VmHandle, stateDir: string): Promise<void>;
  /**
   * Starts a VM from a saved state. `spec` must have the saved VM's shape — cpus, memory, the same
   * devices in the same order — but disk and share paths may differ (the guest must then drop
   * what it cached of a re-pointed disk). The snapshot files are only read, so concurrent
   * restores of one snapshot are fine. Resolves once the guest runs; throws SnapshotError (no
   * process left) when the snapshot does not fit or fails to load.
   */
  restore(spec: VmSpec, stateDir: string, options?: RestoreOptions): Promise<VmHandle>;
  /**
   * Optional (early restores): how `handle`, from `restore`, was started, as JSON the caller may
   * keep; `runDir` is the directory all of the run's own paths are in (a prestart puts another
   * in its place). Undefined when that cannot be. A start that will restore the same way can
   * then begin before it knows its spec, with the driver's prestart function on the recipe, and
   * hand the result to `restore`.
   */
  restoreRecipe?(handle: VmHandle, runDir: string): unknown;
  /**
   * Optional (machine snapshots): saves a running VM from `restore` into `stateDir` (an empty,
   * private directory) in the form `restore` reads, so any number of copies resume where it was.
   * The VM is paused only while its state is taken and `whilePaused` copies its writable disks
   * (returning the copies by disk id: what the saved state is checked against); then it runs on.
   * Throws SnapshotError (the VM running again) when it cannot.
   */
  snapshotRunning?(
    handle: VmHandle,
    stateDir: string,
    whilePaused: () => Promise<Record<string, string>>,
  ): Promise<void>;
}

export interface RestoreOptions {
  /**
   * A restore begun early from a recipe. `restore` takes it over only if it is exactly what it
   * would start; otherwise it ends it and throws PrestartMismatchError. Either way it is
   * `restore`'s to end from then on.
   */
  prestarted?: PrestartedRestore;
}

/**
 * What a driver's prestart returns; only that driver knows what is inside. Until someone takes
 * it over it does not keep its process alive (a CLI that fails early just exits, and ends it).
 */
export interface PrestartedRestore {
  readonly kind: string;
  /** Taken over: from now on it keeps the process alive like anything else being waited on. */
  hold(): void;
  /** Ends it, and closes what it opened. */
  discard(): void;
}

export interface DriverCapabilities {
  snapshot?: SnapshotCapability;
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
