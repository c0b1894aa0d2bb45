// How the runtime wires a guest from the features its driver declares.
import { SmolvmError } from '@smolvm/common';
import type { DriverFeatures } from '@smolvm/driver-api';
import {
  IMAGE_DISK_ID,
  OVERLAY_DISK_ID,
  STORAGE_DISK_ID,
  checkGuestWiring,
  diskOrder,
  guestDisk,
  imageRoot,
} from '../src/layout';

const qemu: DriverFeatures = {
  agentTransport: 'virtio-serial',
  shares: '9p',
  shareOwnership: true,
  diskLookup: 'serial',
  diskRanges: true,
  nic: 'unix-stream',
  snapshot: true,
};
const byOrder: DriverFeatures = { ...qemu, diskLookup: 'order' };

describe('disk references', () => {
  it('by serial: the disk id, wherever the disk is', () => {
    expect(guestDisk(qemu, { image: false, machineDisks: true }, OVERLAY_DISK_ID)).toEqual({ serial: OVERLAY_DISK_ID });
    expect(imageRoot(qemu, { image: true, machineDisks: true })).toEqual({
      device: { serial: IMAGE_DISK_ID },
      fstype: 'erofs',
    });
  });

  it("by order: the device of the disk's place (the agent's disk is always /dev/vda)", () => {
    expect(diskOrder({ image: true, machineDisks: true })).toEqual([
      'smolvm-agent',
      IMAGE_DISK_ID,
      OVERLAY_DISK_ID,
      STORAGE_DISK_ID,
    ]);
    expect(guestDisk(byOrder, { image: true, machineDisks: true }, STORAGE_DISK_ID)).toEqual({ path: '/dev/vdd' });
    expect(guestDisk(byOrder, { image: false, machineDisks: true }, OVERLAY_DISK_ID)).toEqual({ path: '/dev/vdb' });
    // The image is the second disk with or without machine disks: setup and setupRoot agree.
    expect(imageRoot(byOrder, { image: true, machineDisks: false })).toEqual(
      imageRoot(byOrder, { image: true, machineDisks: true }),
    );
    expect(() => guestDisk(byOrder, { image: false, machineDisks: false }, IMAGE_DISK_ID)).toThrow(/not attached/);
  });
});

describe('checkGuestWiring', () => {
  it('takes what the guest agent can use', () => {
    expect(checkGuestWiring('kvm', qemu, { shares: true })).toBe(qemu);
    expect(checkGuestWiring('x', { ...qemu, shares: 'none' }, { shares: false }).shares).toBe('none');
  });

  it('refuses, naming the driver, an agent transport or share type the guest agent lacks, and a probe without features', () => {
    expect(() => checkGuestWiring('fc', { ...qemu, agentTransport: 'vsock' }, { shares: false })).toThrow(
      'the fc driver reaches the guest over vsock, but the guest agent speaks over virtio-serial only',
    );
    expect(() => checkGuestWiring('ch', { ...qemu, shares: 'virtio-fs' }, { shares: true })).toThrow(
      /over virtio-fs, but the guest agent mounts 9p shares only/,
    );
    expect(() => checkGuestWiring('fc', { ...qemu, shares: 'none' }, { shares: true })).toThrow(SmolvmError);
    expect(() => checkGuestWiring('old', undefined, { shares: false })).toThrow(/no features in its probe/);
  });
});
