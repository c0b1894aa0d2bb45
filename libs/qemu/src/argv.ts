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
 * How a VM's state is kept, for snapshots (docs/architecture.md#warm-starts). Guest RAM lives in a file: `share: true`
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
  const machineOptions = state
    ? { ...target.machineOptions, 'memory-backend': MEMORY_BACKEND_ID }
    : (target.machineOptions ?? {});
  const argv: string[] = [
    '-M',
    opts(target.machine, machineOptions, 'machine'),
    '-accel',
    opts(optValue(target.accel, 'accel'), target.accelOptions ?? {}, 'accel'),
    '-cpu',
    optValue(target.cpu, 'cpu'),
    '-smp',
    String(spec.cpus),
    '-m',
    `${spec.memoryMiB}M`,
    // No default devices, no config files, no display, and a guest reboot ends QEMU: smolvm VMs
    // never reboot, and the kernel's reboot=t turns panics and poweroff into a reset.
    '-nodefaults',
    '-no-user-config',
    '-nographic',
    '-no-reboot',
    ...(target.sandbox ? ['-sandbox', SANDBOX] : []),
    '-kernel',
    rawArg(spec.kernel, 'kernel'),
  ];
  if (state) {
    argv.push(
      '-object',
      opts(
        'memory-backend-file',
        { id: MEMORY_BACKEND_ID, size: `${spec.memoryMiB}M`, 'mem-path': state.memoryFile, share: state.share },
        'memoryFile',
      ),
      // The saved VM must come back running, not paused: it was stopped only to be saved.
      '-global',
      'migration.store-global-state=off',
    );
    // The restore commands arrive on a second monitor on stdin (prestart.ts restoreScript). -S:
    // the restored guest waits, paused, for whoever takes the VM over to `cont` it (snapshot.ts
    // waitRunning). An early start (prestart.ts) loads the state while the CLI is still loading,
    // and an idle guest under TCG is not free (its timer ticks cost ~2-3% of a core): dozens of
    // early-started guests running before their CLIs could use them starved those CLIs.
    if (state.incoming)
      argv.push('-S', '-incoming', 'defer', '-chardev', 'stdio,id=restore', '-mon', 'chardev=restore,mode=control');
  }
  if (spec.initrd !== undefined) argv.push('-initrd', rawArg(spec.initrd, 'initrd'));
  argv.push('-append', rawArg(kernelCmdline(spec, target), 'cmdline'));

  argv.push(
    '-chardev',
    opts('file', { id: 'console', path: spec.consoleLog }, 'consoleLog'),
    '-serial',
    'chardev:console',
    // QEMU connects to our listening socket as a client, like the agent channel: no polling.
    '-chardev',
    opts('socket', { id: 'qmp', path: files.qmpSocket }, 'runDir'),
    '-mon',
    'chardev=qmp,mode=control',
    '-device',
    'virtio-rng-device',
    '-device',
    'virtio-serial-device',
    '-chardev',
    opts('socket', { id: AGENT_CHARDEV_ID, path: spec.agent.socketPath }, 'agent.socketPath'),
    '-device',
    opts('virtserialport', { chardev: AGENT_CHARDEV_ID, name: AGENT_PORT_NAME }),
  );

  (spec.disks ?? []).forEach((disk, i) => {
    const field = `disks[${i}]`;
    const node = `disk${i}`;
    argv.push(
      '-blockdev',
      opts(
        `driver=${disk.format === 'qcow2' ? 'qcow2' : 'raw'}`,
        {
          'node-name': node,
          'read-only': disk.readOnly,
          // Sparse overlay/storage disks stay sparse when the guest frees blocks.
          discard: disk.readOnly ? undefined : 'unmap',
          // A byte range of a bigger file (a pack section used in place): the raw driver's window.
          offset: disk.range?.offset,
          size: disk.range?.size,
          'file.driver': 'file',
          // file.filename, unlike -drive file=, never parses a "protocol:" prefix out of the path.
          'file.filename': disk.path,
        },
        field,
      ),
      '-device',
      opts('virtio-blk-device', { drive: node, serial: disk.id }, field),
    );
  });

  (spec.shares ?? []).forEach((share, i) => {
    const field = `shares[${i}]`;
    const id = `fs${i}`;
    argv.push(
      '-fsdev',
      opts(
        'local',
        {
          id,
          path: share.hostPath,
          security_model: share.hostOwnership ? NINEP_HOST_OWNERSHIP_MODEL : NINEP_SECURITY_MODEL,
          // Modes for what the guest creates exist only in the mapped models.
          fmode: share.hostOwnership ? undefined : NINEP_FILE_MODE,
          dmode: share.hostOwnership ? undefined : NINEP_DIR_MODE,
          readonly: share.readOnly ? true : undefined,
        },
        field,
      ),
      '-device',
      opts('virtio-9p-device', { fsdev: id, mount_tag: share.tag }, field),
    );
  });

  if (spec.network) {
    argv.push(
      '-netdev',
      opts(
        'stream',
        { id: 'net0', server: false, 'addr.type': 'unix', 'addr.path': spec.network.socketPath },
        'network',
      ),
      '-device',
      opts('virtio-net-device', { netdev: 'net0', mac: spec.network.mac }, 'network'),
    );
  }
  // Elastic memory: the guest reports the pages it frees and QEMU hands them back to the host. Only
  // where guest RAM is anonymous: QEMU 7.2 discards file-backed RAM by punching holes in the file,
  // and a boot snapshot's RAM file is shared by every VM restored from it. Last, so that the other
  // devices keep their places whether it is there or not; and only in a free transport (a VM that
  // needs all of microvm's for its disks, shares and NIC does without).
  const transports = argv.filter((a, i) => argv[i - 1] === '-device' && /^virtio-[a-z0-9]+-device\b/.test(a)).length;
  if (!state && transports < (target.virtioTransports ?? Infinity))
    argv.push('-device', 'virtio-balloon-device,free-page-reporting=on');
  return argv;
}

/**
 * 9p ownership semantics, decided once for every share: `mapped-xattr`. The guest's chown, chmod,
 * mknod and symlink never become host metadata: files the guest creates are plain files and
 * directories owned by QEMU's user with NINEP_FILE_MODE/NINEP_DIR_MODE (less the umask), and what
 * the guest asked for (owner, mode with setuid/setgid, device numbers, a symlink's type) is kept
 * in `user.virtfs.*` xattrs that only the guest reads. Host files without those xattrs show their
 * real owner and mode. The guest reaches no other xattr than `user.*` (ACLs are mapped too), so no
 * file capability either. `none` applied guest chmod (setuid included) and, with QEMU as root,
 * chown and mknod for real; `passthrough` does so on purpose. The cost: the host filesystem
 * must take user xattrs (ext4, xfs, btrfs, tmpfs since Linux 6.6), else guest writes fail.
 */
export const NINEP_SECURITY_MODEL = 'mapped-xattr';
/**
 * Shares with `hostOwnership` (a container's rootfs): `none`, the host's owners, modes and
 * symlinks as they are, so an image's symlinks resolve. QEMU has no capabilities (supervise.ts),
 * so the guest's chown of a file to another owner changes nothing, and `none` does not fail it.
 */
export const NINEP_HOST_OWNERSHIP_MODEL = 'none';
/** Host modes of what the guest creates: readable like a default umask makes them, never more. */
export const NINEP_FILE_MODE = '0644';
export const NINEP_DIR_MODE = '0755';

/**
 * QEMU's seccomp filter (`-sandbox`, Linux builds): on top of its default deny list, no
 * obsolete system calls, no set*uid/set*gid, no fork/exec (so no `exec:` migration: snapshots
 * use fd: and unix: URIs) and no scheduler/NUMA/priority changes. A device-emulation bug the
 * guest reaches lands in this filter, in a process with no capabilities (supervise.ts).
 */
export const SANDBOX = 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny';

export function kernelCmdline(spec: VmSpec, target: QemuTarget): string {
  const args = [`console=${target.consoleDevice}`, ...target.kernelArgs, ...(spec.cmdline ?? [])];
  for (const arg of args) {
    if (!arg || /\s/.test(arg.replace(/"[^"]*"/g, '')))
      throw new InvalidVmSpecError('cmdline', `'${arg}' is not one kernel argument`);
  }
  return args.join(' ');
}
