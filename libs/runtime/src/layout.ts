// What the guest is given and how it finds it: the disks' ids, the shares' tags, and the
// references the agent's setup uses for them, built from the wiring the driver declares
// (DriverFeatures: disks by serial or by order). The guest agent reaches the host over
// virtio-serial and mounts 9p shares: a driver wired otherwise cannot run it.
import type { BlockDeviceRef, SetupSpec } from '@smolvm/agent-protocol';
import { AGENT_DISK_ID } from '@smolvm/agent-image';
import { SmolvmError } from '@smolvm/common';
import type { DriverFeatures } from '@smolvm/driver-api';

/** Disk serial of the per-run image disk; the agent mounts it as the overlay's lower layer. */
export const IMAGE_DISK_ID = 'smolvm-image';
/** Disk serials of a persistent machine's overlay (upper layer) and storage (/workspace) disks. */
export const OVERLAY_DISK_ID = 'smolvm-overlay';
export const STORAGE_DISK_ID = 'smolvm-storage';
/** 9p tag of `rootShare`. */
export const ROOT_SHARE_TAG = 'root';

/** A persistent machine's disks; qcow2 for snapshot forks (copy-on-write over the snapshot's). */
export interface PersistentDisks {
  overlayDisk: string;
  storageDisk: string;
  format?: 'raw' | 'qcow2';
}

/** A byte range of a file that is a disk. */
export interface DiskRange {
  offset: number;
  size: number;
}

/** Which disks a VM has besides the agent's, in the order boot() attaches them. */
export interface DiskSet {
  image: boolean;
  machineDisks: boolean;
}

/** The disks' ids in the order the guest sees them (the agent's image is always the first). */
export function diskOrder(disks: DiskSet): string[] {
  return [
    AGENT_DISK_ID,
    ...(disks.image ? [IMAGE_DISK_ID] : []),
    ...(disks.machineDisks ? [OVERLAY_DISK_ID, STORAGE_DISK_ID] : []),
  ];
}

/** How the agent finds disk `id`: its serial, or (drivers without serials) its place in the order. */
export function guestDisk(features: DriverFeatures, disks: DiskSet, id: string): BlockDeviceRef {
  if (features.diskLookup === 'serial') return { serial: id };
  const index = diskOrder(disks).indexOf(id);
  if (index < 0 || index > 25) throw new SmolvmError(`disk ${id} is not attached to this VM`);
  return { path: `/dev/vd${String.fromCharCode(0x61 + index)}` };
}

/** The image disk as the overlay's lower layer, in the same words for setup and setupRoot (the agent compares them). */
export function imageRoot(features: DriverFeatures, disks: DiskSet): NonNullable<SetupSpec['image']> {
  return { device: guestDisk(features, disks, IMAGE_DISK_ID), fstype: 'erofs' };
}

/**
 * Refuses a driver whose wiring the guest agent cannot use: it reaches the host over a
 * virtio-serial port and mounts shares over 9p. One line naming the driver and what it lacks.
 */
export function checkGuestWiring(
  driver: string,
  features: DriverFeatures | undefined,
  uses: { shares: boolean },
): DriverFeatures {
  if (!features)
    throw new SmolvmError(`the ${driver} driver did not say how it wires a guest (no features in its probe)`);
  if (features.agentTransport !== 'virtio-serial') {
    throw new SmolvmError(
      `the ${driver} driver reaches the guest over ${features.agentTransport}, but the guest agent speaks over virtio-serial only`,
      {
        remedy: 'use another driver (--driver)',
      },
    );
  }
  if (uses.shares && features.shares !== '9p') {
    throw new SmolvmError(
      `the ${driver} driver shares host directories over ${features.shares}, but the guest agent mounts 9p shares only`,
      {
        remedy: 'drop the volumes, or use another driver (--driver)',
      },
    );
  }
  return features;
}
