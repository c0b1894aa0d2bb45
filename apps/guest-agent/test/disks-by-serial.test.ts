// Finding a disk by its serial: one scan of /sys/block (each serial read is a request to the
// virtio device), kept, so a VM restored from a snapshot holding the scan reads none.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { disksBySerial, findDeviceBySerial } from '../src/system';

let sysBlock: string;
const disk = (name: string, serial?: string) => {
  fs.mkdirSync(path.join(sysBlock, name), { recursive: true });
  if (serial !== undefined) fs.writeFileSync(path.join(sysBlock, name, 'serial'), `${serial}\n`);
};
beforeEach(() => (sysBlock = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-sys-block-'))));
afterEach(() => fs.rmSync(sysBlock, { recursive: true, force: true }));

describe('disks by serial', () => {
  it('maps every disk with a serial, skipping devices without one', () => {
    disk('vda', 'smolvm-agent');
    disk('vdb', 'smolvm-overlay');
    disk('loop0');
    expect(disksBySerial(sysBlock)).toEqual(
      new Map([
        ['smolvm-agent', '/dev/vda'],
        ['smolvm-overlay', '/dev/vdb'],
      ]),
    );
  });

  it('answers from the last scan, and scans again for a serial it does not know', () => {
    disk('vda', 'smolvm-agent');
    expect(findDeviceBySerial('smolvm-agent', sysBlock)).toBe('/dev/vda');
    // Not read again: the scan is kept.
    fs.rmSync(path.join(sysBlock, 'vda'), { recursive: true });
    expect(findDeviceBySerial('smolvm-agent', sysBlock)).toBe('/dev/vda');
    disk('vdc', 'smolvm-storage');
    expect(findDeviceBySerial('smolvm-storage', sysBlock)).toBe('/dev/vdc');
    expect(findDeviceBySerial('smolvm-nothing', sysBlock)).toBeNull();
  });
});
