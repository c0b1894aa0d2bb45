// Turns a VmSpec + QemuTarget into QEMU's argv. Pure: no file system access, so every device
// kind is unit-tested without QEMU. Transport is virtio-mmio (`-device virtio-*-device`) on both
// microvm and virt: no PCI in the guest kernel, and the kernel finds the devices on its own.
import { InvalidVmSpecError, type VmSpec } from '@smolvm/driver-api';
import { opts, optValue, rawArg } from './opts';
import type { QemuTarget, RunFiles } from './target';

/** The virtio-serial port name the guest agent looks for under /sys/class/virtio-ports. */
export const AGENT_PORT_NAME = 'smolvm.agent';
/** The agent channel's chardev id (QMP query-chardev reports its connection under it). */
export const AGENT_CHARDEV_ID = 'agent';

/**
 * How a VM's state is kept, for snapshots (DESIGN §3). Guest RAM lives in a file: `share: true`
 * while booting a VM that will be saved (its writes land in the file), `share: false` when
 * restoring (a private copy-on-write mapping: one file serves any number of VMs).
 */
export interface MachineStateArgs {
  memoryFile: string;
  share: boolean;
  /** Load the device state (commands on stdin: restoreScript) instead of booting. */
  incoming: boolean;
}

/** The id of the RAM backend object when guest RAM is a file. */
const MEMORY_BACKEND_ID = 'smolvm-ram';

export function buildQemuArgv(spec: VmSpec, target: QemuTarget, files: RunFiles, state?: MachineStateArgs): string[] {
  const machineOptions = state ? { ...target.machineOptions, 'memory-backend': MEMORY_BACKEND_ID } : target.machineOptions ?? {};
  const argv: string[] = [
    '-M', opts(target.machine, machineOptions, 'machine'),
    '-accel', optValue(target.accel, 'accel'),
    '-cpu', optValue(target.cpu, 'cpu'),
    '-smp', String(spec.cpus),
    '-m', `${spec.memoryMiB}M`,
    // No default devices, no config files, no display, and a guest reboot ends QEMU: smolvm VMs
    // never reboot, and the kernel's reboot=t turns panics and poweroff into a reset.
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
    '-kernel', rawArg(spec.kernel, 'kernel'),
  ];
  if (state) {
    argv.push(
      '-object',
      opts('memory-backend-file', { id: MEMORY_BACKEND_ID, size: `${spec.memoryMiB}M`, 'mem-path': state.memoryFile, share: state.share }, 'memoryFile'),
      // The saved VM must come back running, not paused: it was stopped only to be saved.
      '-global', 'migration.store-global-state=off',
    );
    // The restore commands arrive on a second monitor on stdin (prestart.ts restoreScript).
    if (state.incoming) argv.push('-incoming', 'defer', '-chardev', 'stdio,id=restore', '-mon', 'chardev=restore,mode=control');
  }
  if (spec.initrd !== undefined) argv.push('-initrd', rawArg(spec.initrd, 'initrd'));
  argv.push('-append', rawArg(kernelCmdline(spec, target), 'cmdline'));

  argv.push(
    '-chardev', opts('file', { id: 'console', path: spec.consoleLog }, 'consoleLog'),
    '-serial', 'chardev:console',
    // QEMU connects to our listening socket as a client, like the agent channel: no polling.
    '-chardev', opts('socket', { id: 'qmp', path: files.qmpSocket }, 'runDir'),
    '-mon', 'chardev=qmp,mode=control',
    '-device', 'virtio-rng-device',
    '-device', 'virtio-serial-device',
    '-chardev', opts('socket', { id: AGENT_CHARDEV_ID, path: spec.agent.socketPath }, 'agent.socketPath'),
    '-device', opts('virtserialport', { chardev: AGENT_CHARDEV_ID, name: AGENT_PORT_NAME }),
  );

  (spec.disks ?? []).forEach((disk, i) => {
    const field = `disks[${i}]`;
    const node = `disk${i}`;
    argv.push(
      '-blockdev',
      opts('driver=raw', {
        'node-name': node,
        'read-only': disk.readOnly,
        // Sparse overlay/storage disks stay sparse when the guest frees blocks.
        discard: disk.readOnly ? undefined : 'unmap',
        'file.driver': 'file',
        // file.filename, unlike -drive file=, never parses a "protocol:" prefix out of the path.
        'file.filename': disk.path,
      }, field),
      '-device', opts('virtio-blk-device', { drive: node, serial: disk.id }, field),
    );
  });

  (spec.shares ?? []).forEach((share, i) => {
    const field = `shares[${i}]`;
    const id = `fs${i}`;
    argv.push(
      '-fsdev',
      opts('local', {
        id,
        path: share.hostPath,
        security_model: NINEP_SECURITY_MODEL,
        readonly: share.readOnly ? true : undefined,
      }, field),
      '-device', opts('virtio-9p-device', { fsdev: id, mount_tag: share.tag }, field),
    );
  });

  if (spec.network) {
    argv.push(
      '-netdev',
      opts('stream', { id: 'net0', server: false, 'addr.type': 'unix', 'addr.path': spec.network.socketPath }, 'network'),
      '-device', opts('virtio-net-device', { netdev: 'net0', mac: spec.network.mac }, 'network'),
    );
  }
  return argv;
}

/**
 * 9p ownership semantics, decided once for every share: `none` (Lima's default too). Files the
 * guest creates belong on the host to the user running smolvm, whatever uid the guest used;
 * host files show their real owner and mode; a guest chown/chmod that the host user may not do
 * is ignored instead of failing `cp -a` or `tar x`. `mapped-xattr` would keep guest ownership
 * in user.virtfs.* xattrs written into the user's own tree and fails on filesystems without user
 * xattrs (tmpfs before Linux 6.6, many NFS setups); `passthrough` fails every chown unless QEMU
 * runs as root. Caveat: when QEMU does run as root, guest chown/mknod apply for real on the share.
 */
export const NINEP_SECURITY_MODEL = 'none';

export function kernelCmdline(spec: VmSpec, target: QemuTarget): string {
  const args = [`console=${target.consoleDevice}`, ...target.kernelArgs, ...(spec.cmdline ?? [])];
  for (const arg of args) {
    if (!arg || /\s/.test(arg.replace(/"[^"]*"/g, ''))) throw new InvalidVmSpecError('cmdline', `'${arg}' is not one kernel argument`);
  }
  return args.join(' ');
}
