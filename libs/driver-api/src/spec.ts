// What a driver is asked to run. Everything here is host-neutral: no hypervisor option leaks in,
// so one spec boots under any driver (docs/architecture.md#driver-contract). Paths are absolute host paths.

/** A disk the guest sees as a virtio block device. */
export interface BlockDeviceSpec {
  /**
   * How the guest finds this disk: the driver exposes it as the device serial, so it appears in
   * /sys/block/vdX/serial (and /dev/disk/by-id/virtio-ID with udev). 1–20 characters of
   * [A-Za-z0-9_.-], unique within the spec. Disks appear in spec order: the first is the guest's
   * first disk (/dev/vda on Linux), which the agent image boots from (`root=/dev/vda`); find the
   * others by serial.
   */
  id: string;
  path: string;
  readOnly: boolean;
  /**
   * qcow2: a copy-on-write layer whose backing file (named in its header, which the caller made;
   * never probed from a raw disk the guest could write) holds the rest (snapshot forks).
   */
  format: 'raw' | 'qcow2';
  /** Only this byte range of `path` is the disk (a section of a .smolmachine used in place). */
  range?: { offset: number; size: number };
}

/** A host directory the guest mounts over 9p (`mount -t 9p -o trans=virtio TAG /mnt`). */
export interface HostShareSpec {
  /** 9p mount tag: 1–31 characters of [A-Za-z0-9_.-], unique within the spec. */
  tag: string;
  hostPath: string;
  readOnly: boolean;
  /**
   * The guest sees and sets the host files' real owners, modes and symlinks, as far as the
   * hypervisor's user may (failures to change an owner are ignored). For a tree that is the
   * guest's own, like a container rootfs; default: the guest's metadata is kept apart from the
   * host's (docs/security.md).
   */
  hostOwnership?: boolean;
}

/**
 * The host <-> agent channel (docs/architecture.md#agent-protocol). The caller listens on `socketPath` BEFORE start();
 * the driver wires one virtio-serial port named `smolvm.agent` that connects to it as a client,
 * so there is no start-up race and no polling.
 */
export interface AgentChannelSpec {
  socketPath: string;
}

/**
 * A virtio-net NIC whose frames go to a unix stream socket the caller listens on (framing:
 * 4-byte big-endian length + Ethernet frame, as QEMU's `-netdev stream`). Absent: no NIC at all.
 */
export interface NetworkEndpointSpec {
  socketPath: string;
  /** Unicast, locally administered is best: e.g. 52:54:00:xx:xx:xx. */
  mac: string;
}

export interface VmSpec {
  /** Uncompressed guest kernel (x86-64: PVH-bootable vmlinux). */
  kernel: string;
  initrd?: string;
  /** Appended after the driver's own arguments (console, timers): later arguments win. */
  cmdline?: string[];
  cpus: number;
  memoryMiB: number;
  disks?: BlockDeviceSpec[];
  shares?: HostShareSpec[];
  agent: AgentChannelSpec;
  network?: NetworkEndpointSpec;
  /** The guest's console output goes here (created or truncated at start). */
  consoleLog: string;
  /**
   * A directory private to this VM where the driver keeps its own files (control sockets). The
   * driver creates it if needed and removes the files it made once the VM has ended; it never
   * writes anywhere else except `consoleLog`.
   */
  runDir: string;
}
