// The agent image a VM boots, with the agent's V8 startup blob baked in: built once per guest
// CPU (the driver names it, ProbeResult.guestCpu) inside a VM of the plain image. A packed
// machine's agent image is booted as it is (pack create bakes a blob in: packed-agent.ts).
import fs from 'node:fs';
import { SmolvmError, writeFileAtomic } from '@smolvm/common';
import {
  AGENT_DISK_ID,
  agentKernelArgs,
  buildSnapshotInGuest,
  ensureAgentImage,
  snapshotBlobPath,
  type AgentImage,
  type AgentImageOptions,
} from '@smolvm/agent-image';
import type { ProbeResult } from '@smolvm/driver-api';
import { boot, type BootOptions } from './boot';
import type { GuestAssets } from './start';
import type { Vm } from './vm';

/** Keys of a pack's agent images start with this: their boot snapshots are a family of their own. */
export const PACKED_KEY_PREFIX = 'packed-';

/** A pack's agent image as the boot path wants it: booted as it is. */
export function packedAgentImage(file: string, key: string): AgentImage {
  return {
    path: file,
    key: `${PACKED_KEY_PREFIX}${key}`,
    kernelArgs: agentKernelArgs(),
    diskId: AGENT_DISK_ID,
    built: false,
  };
}

/**
 * The agent image to boot. V8 ties a startup snapshot to the CPU it was built on, so the blob is
 * built once per guest CPU model inside a VM of the plain image, then baked into a second image.
 * Best effort: without a snapshot the agent starts from its bundle, only slower.
 */
export function agentImageOptions(
  cacheDir: string,
  options: { agentBundle?: string; guestAssets?: GuestAssets },
): AgentImageOptions {
  if (!options.agentBundle) throw new SmolvmError('startVm needs agentBundle unless the VM is packed');
  const { node, busybox, koffiFrom } = options.guestAssets ?? {};
  return {
    cacheDir,
    agentBundle: options.agentBundle,
    ...(node ? { node } : {}),
    ...(busybox ? { busybox } : {}),
    ...(koffiFrom ? { koffiFrom } : {}),
  };
}

/** The CPU a driver's guests see, which a blob is only valid for (ProbeResult.guestCpu, or the accelerator's). */
export function guestCpuOf(driver: string, probe: Pick<ProbeResult, 'guestCpu' | 'accelerator'>): string {
  return probe.guestCpu ?? `${driver}-${probe.accelerator ?? 'default'}`;
}

/** `guestCpu`: the CPU the guest sees (guestCpuOf), which a blob is only valid for. */
export async function agentImageFor(
  options: BootOptions,
  imageOptions: AgentImageOptions,
  guestCpu: string,
): Promise<AgentImage> {
  const plain = options.agentImage;
  if (options.env.SMOLVM_AGENT_SNAPSHOT === '0') return plain;
  return withGuestBlob(plain, imageOptions, guestCpu, () =>
    boot(
      { ...options, cpus: 1, memoryMiB: 1024, imageErofs: undefined, volumes: [], persistent: undefined },
      performance.now(),
    ),
  );
}

/**
 * `plain` (built by ensureAgentImage from `imageOptions`) with the agent's startup blob for
 * `guestCpu` baked in: the blob is built once, in the bare VM of `plain` that `bootVm` starts,
 * and cached per image and guest CPU. `plain` itself when that build fails.
 */
export async function withGuestBlob(
  plain: AgentImage,
  imageOptions: AgentImageOptions,
  guestCpu: string,
  bootVm: () => Promise<Vm>,
): Promise<AgentImage> {
  const blob = snapshotBlobPath(imageOptions.cacheDir, plain.key, guestCpu);
  if (!fs.existsSync(blob)) {
    try {
      const vm = await bootVm();
      try {
        // An image whose node is on the runtime disk mounts it again in the build's exec.
        const runtime = plain.runtimeDiskId ? { runtimeDisk: plain.runtimeDiskId } : {};
        writeFileAtomic(blob, await buildSnapshotInGuest(vm.agent, undefined, runtime));
      } finally {
        await vm.dispose();
      }
    } catch {
      return plain;
    }
  }
  return ensureAgentImage({ ...imageOptions, snapshot: { blob } });
}
