// Checks a spec before any process starts, so a mistake is one clear line instead of a
// hypervisor error. Drivers call this first; it is shared so every driver agrees on what is valid.
import fs from 'node:fs';
import path from 'node:path';
import { InvalidVmSpecError } from './errors';
import type { DriverFeatures } from './driver';
import type { VmSpec } from './spec';

const DISK_ID = /^[A-Za-z0-9_.-]{1,20}$/; // virtio-blk serial is 20 bytes
const SHARE_TAG = /^[A-Za-z0-9_.-]{1,31}$/; // 9p mount_tag limit (QEMU: 31)
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
// One kernel argument: no whitespace unless inside one pair of double quotes (key="a b").
const KERNEL_ARG = /^[^\s"=]+(=("[^"]*"|[^\s"]*))?$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

/**
 * Throws InvalidVmSpecError for the first thing wrong with `spec`. With `features` (the driver's
 * probe), also for anything it asks of the driver that the driver does not declare.
 */
export function validateVmSpec(spec: VmSpec, features?: DriverFeatures): void {
  if (features) checkFeatures(spec, features);
  checkFile('kernel', spec.kernel);
  if (spec.initrd !== undefined) checkFile('initrd', spec.initrd);
  (spec.cmdline ?? []).forEach((arg, i) => {
    if (!KERNEL_ARG.test(arg) || CONTROL.test(arg)) {
      throw new InvalidVmSpecError(`cmdline[${i}]`, `'${arg}' is not one kernel argument`, {
        remedy: 'pass one argument per element; quote values with spaces as key="a b"',
      });
    }
  });
  checkInteger('cpus', spec.cpus, 1, 255);
  checkInteger('memoryMiB', spec.memoryMiB, 16, 16 * 1024 * 1024);

  const ids = new Set<string>();
  (spec.disks ?? []).forEach((disk, i) => {
    const field = `disks[${i}]`;
    if (!DISK_ID.test(disk.id))
      throw new InvalidVmSpecError(`${field}.id`, `'${disk.id}' must be 1-20 characters of A-Z a-z 0-9 _ . -`);
    if (ids.has(disk.id)) throw new InvalidVmSpecError(`${field}.id`, `'${disk.id}' is used twice`);
    ids.add(disk.id);
    if (disk.format !== 'raw' && disk.format !== 'qcow2')
      throw new InvalidVmSpecError(`${field}.format`, `'${String(disk.format)}' is not supported (raw or qcow2)`);
    if (disk.format === 'qcow2' && disk.range)
      throw new InvalidVmSpecError(`${field}.range`, 'a qcow2 disk is a whole file');
    checkFile(`${field}.path`, disk.path);
    if (disk.range) {
      checkInteger(`${field}.range.offset`, disk.range.offset, 0, Number.MAX_SAFE_INTEGER);
      checkInteger(`${field}.range.size`, disk.range.size, 1, Number.MAX_SAFE_INTEGER);
      if (disk.range.offset + disk.range.size > (statOf(disk.path)?.size ?? 0))
        throw new InvalidVmSpecError(`${field}.range`, `it ends past the end of ${disk.path}`);
    }
  });

  const tags = new Set<string>();
  (spec.shares ?? []).forEach((share, i) => {
    const field = `shares[${i}]`;
    if (!SHARE_TAG.test(share.tag))
      throw new InvalidVmSpecError(`${field}.tag`, `'${share.tag}' must be 1-31 characters of A-Z a-z 0-9 _ . -`);
    if (tags.has(share.tag)) throw new InvalidVmSpecError(`${field}.tag`, `'${share.tag}' is used twice`);
    tags.add(share.tag);
    checkPath(`${field}.hostPath`, share.hostPath);
    if (!statOf(share.hostPath)?.isDirectory())
      throw new InvalidVmSpecError(`${field}.hostPath`, `${share.hostPath} is not a directory`);
  });

  checkListeningSocket('agent.socketPath', spec.agent.socketPath);
  if (spec.network) {
    checkListeningSocket('network.socketPath', spec.network.socketPath);
    const mac = spec.network.mac;
    // Bit 0 of the first octet marks multicast: a NIC address must be unicast.
    if (!MAC.test(mac) || (parseInt(mac.slice(0, 2), 16) & 1) === 1) {
      throw new InvalidVmSpecError('network.mac', `'${mac}' is not a unicast MAC address`, {
        remedy: 'use the form 52:54:00:12:34:56',
      });
    }
  }

  checkPath('consoleLog', spec.consoleLog);
  if (!statOf(path.dirname(spec.consoleLog))?.isDirectory()) {
    throw new InvalidVmSpecError('consoleLog', `directory ${path.dirname(spec.consoleLog)} does not exist`);
  }
  checkPath('runDir', spec.runDir);
}

/** What the spec asks for that `features` does not declare: one line naming the field. */
function checkFeatures(spec: VmSpec, features: DriverFeatures): void {
  const shares = spec.shares ?? [];
  if (shares.length > 0 && features.shares === 'none') {
    throw new InvalidVmSpecError('shares', 'this driver cannot share host directories', {
      remedy: 'drop the volumes, or use a driver with shares',
    });
  }
  const owned = shares.findIndex((s) => s.hostOwnership);
  if (owned >= 0 && !features.shareOwnership)
    throw new InvalidVmSpecError(
      `shares[${owned}].hostOwnership`,
      "this driver's shares cannot carry host owners and modes",
    );
  const ranged = (spec.disks ?? []).findIndex((d) => d.range);
  if (ranged >= 0 && !features.diskRanges)
    throw new InvalidVmSpecError(`disks[${ranged}].range`, 'this driver cannot use a byte range of a file as a disk');
  if (spec.network && features.nic !== 'unix-stream') {
    throw new InvalidVmSpecError(
      'network',
      features.nic === 'none'
        ? 'this driver gives guests no NIC'
        : `this driver's NIC is ${features.nic}, not a unix stream socket`,
    );
  }
}

function checkInteger(field: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidVmSpecError(field, `${value} is not an integer from ${min} to ${max}`);
  }
}

function checkPath(field: string, value: string): void {
  if (typeof value !== 'string' || !path.isAbsolute(value))
    throw new InvalidVmSpecError(field, `'${value}' is not an absolute path`);
  if (CONTROL.test(value)) throw new InvalidVmSpecError(field, `${JSON.stringify(value)} contains control characters`);
}

function checkFile(field: string, value: string): void {
  checkPath(field, value);
  const st = statOf(value);
  if (!st) throw new InvalidVmSpecError(field, `${value} does not exist`);
  if (!st.isFile() && !st.isBlockDevice()) throw new InvalidVmSpecError(field, `${value} is not a file`);
}

function checkListeningSocket(field: string, value: string): void {
  checkPath(field, value);
  if (!statOf(value)?.isSocket()) {
    throw new InvalidVmSpecError(field, `${value} is not a unix socket`, {
      remedy: 'listen on the socket before starting the VM',
    });
  }
}

function statOf(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch {
    return undefined;
  }
}
