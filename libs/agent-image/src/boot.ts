// The boot contract between the agent image and whoever starts the VM (see README).

/** Disk serial for the agent image. */
export const AGENT_DISK_ID = 'smolvm-agent';

/**
 * Kernel arguments that boot the agent image: it must be the VM's FIRST virtio-blk disk
 * (/dev/vda), read-only. The kernel mounts it as the root and runs its /init directly: no
 * initramfs to unpack.
 */
export function agentKernelArgs(): string[] {
  return ['root=/dev/vda', 'rootfstype=erofs', 'ro', 'init=/init'];
}
