// startVm(): one VM for one workload, the composition of kernel, agent image, driver and agent
// channel — from a boot snapshot when the driver can (warm-start.ts), else booted (boot.ts). It
// returns only once the agent is ready and the guest root is set up; on any failure it has
// already removed everything it made (VM, sockets, files).
import crypto from 'node:crypto';
import fs from 'node:fs';
import { UsageError, smolvmDirs } from '@smolvm/common';
import type { SetupSpec } from '@smolvm/agent-protocol';
import { ensureAgentImage } from '@smolvm/agent-image';
import type { VolumeMount } from '@smolvm/config';
import { SnapshotError, selectDriver } from '@smolvm/driver-api';
import { agentImageFor, agentImageOptions, guestCpuOf, packedAgentImage } from './agent-blob';
import { boot, type BootOptions } from './boot';
import { MACHINE_SLOT_BYTES } from './boot-snapshot';
import { locateKernel } from './kernel';
import {
  OVERLAY_DISK_ID,
  ROOT_SHARE_TAG,
  STORAGE_DISK_ID,
  checkGuestWiring,
  guestDisk,
  imageRoot,
  type DiskRange,
  type DiskSet,
  type PersistentDisks,
} from './layout';
import { prepareNetwork, sshAgentSetup, type NetworkOptions } from './network';
import type { Gateway } from '@smolvm/netpolicy';
import { discardParts, type PrestartedRun } from './prestart';
import type { Vm } from './vm';
import { RESTORE_READY_TIMEOUT_MS, diskLargerThanSlot, warmStart, type EarlyStart } from './warm-start';

/** Guest ingredients a self-contained smolvm ships instead of finding them on the host. */
export interface GuestAssets {
  /** A vmlinux, used unless SMOLVM_KERNEL names another. */
  kernel?: string;
  /** The Linux node the agent runs on (default: the node running smolvm). */
  node?: string;
  /** A static busybox (default: the host's). */
  busybox?: string;
  /** A directory whose node_modules holds koffi. */
  koffiFrom?: string;
}

export interface StartVmOptions {
  cpus: number;
  memoryMiB: number;
  /** The image's erofs (from @smolvm/oci prepare); absent: a VM on the agent's busybox userland. */
  imageErofs?: string;
  /**
   * The image's identity (its manifest digest) when the image is the same for many runs and known
   * before them (the base of bare VMs): its root is built in the boot snapshot of a shape of its
   * own, so a restore only configures the run, as for the agent's own root.
   */
  imageInSnapshot?: string;
  /** Only this byte range of `imageErofs` is the image (a .smolmachine section used in place). */
  imageRange?: DiskRange;
  /**
   * A packed machine's own kernel and agent image (sections of a .smolmachine, verified by the
   * caller) instead of the host's: booted as they are (no agent startup snapshot is baked into
   * them), with boot snapshots of their own.
   */
  packed?: {
    kernel: string;
    agentImage: { path: string; range?: DiskRange; key: string };
    /** The packed executable whose Node the agent image runs on (a pack with a runtime), verified by the caller. */
    runtime?: { path: string; range?: DiskRange; sha256: string };
  };
  /**
   * A host directory that is the guest's root as it is, writable (a container rootfs prepared by
   * containerd): shared over 9p with the host's owners and modes. Excludes `imageErofs` and
   * `persistent`. Its boot snapshot shape has the share and no root yet, like an image slot.
   */
  rootShare?: string;
  volumes?: VolumeMount[];
  /**
   * Persistent machines: writable disks for the overlay's upper layer and for /workspace (ext4,
   * made by the caller). Absent: a tmpfs upper layer and /workspace in it, gone at power-off.
   */
  persistent?: PersistentDisks;
  /**
   * Every exec runs in a root of its own over the machine's root, its writes discarded when it
   * ends (/workspace and volumes kept): a packed executable's daemon mode.
   */
  freshExecRoot?: boolean;
  hostname?: string;
  /**
   * Resume a running machine's saved state (a machine snapshot's VM directory, written by
   * Vm.snapshotRunning) instead of booting: the guest is already set up, so it only gets its own
   * clock, RNG seed and `hostname`. The disks, volumes and NIC must have the saved VM's shape.
   */
  fromSnapshot?: { stateDir: string };
  /** From --driver or the Smolfile; otherwise SMOLVM_DRIVER or the first usable driver. */
  driver?: { name: string; source: string };
  /** The bundled guest agent (shipped beside the CLI); not needed with `packed`. */
  agentBundle?: string;
  /** What a single-file smolvm carries for guests; each absent one is found on the host as usual. */
  guestAssets?: GuestAssets;
  env?: NodeJS.ProcessEnv;
  /** How long boot may take before it counts as failed. TCG on a busy host is slow: default 120 s. */
  bootTimeoutMs?: number;
  /** A NIC behind our gateway (--net, --allow-*, -p). Absent: no NIC at all. */
  network?: NetworkOptions;
  /** Relay the guest's SSH_AUTH_SOCK to `env.SSH_AUTH_SOCK` (--ssh-agent); checked before boot. */
  sshAgent?: boolean;
  /** Each SSH agent request of the guest that was refused (only listing and signing pass), named. */
  onSshAgentRefused?: (request: string) => void;
  /**
   * Start from the boot snapshot of this VM shape when the driver can (made by the first such
   * start), instead of booting. Default true. A persistent machine's disks take writable slots
   * of its shape's snapshot, as the image takes the image slot.
   */
  bootSnapshot?: boolean;
  /** Diagnostics worth a line with --debug: why a start did not come from a snapshot. */
  onNote?: (message: string) => void;
  /**
   * A restore the caller began early (prestartRun, from an earlier run's Vm.restoreRecipe).
   * startVm owns it from here: it is used if the driver finds it is exactly the restore this
   * start needs, and ended otherwise.
   */
  prestarted?: PrestartedRun;
}

export async function startVm(options: StartVmOptions): Promise<Vm> {
  try {
    return await startOwned(options);
  } finally {
    // Whatever happened, an early start nobody took over is ended (a no-op once taken).
    options.prestarted?.discard();
  }
}

async function startOwned(options: StartVmOptions): Promise<Vm> {
  const t0 = performance.now();
  const env = options.env ?? process.env;
  const cacheDir = smolvmDirs(env).cache;
  const kernel = options.packed?.kernel ?? locateKernel(env, options.guestAssets?.kernel);
  const { driver, probe } = await selectDriver({ name: options.driver?.name, source: options.driver?.source, env });
  const volumes = options.volumes ?? [];
  const features = checkGuestWiring(driver.name, probe.features, {
    shares: volumes.length > 0 || options.rootShare !== undefined,
  });
  const disks: DiskSet = { image: options.imageErofs !== undefined, machineDisks: options.persistent !== undefined };
  if (options.rootShare && (options.imageErofs || options.persistent)) {
    throw new UsageError('a VM whose root is a host directory has no image and no machine disks', {
      remedy: 'give rootShare alone, or an image / persistent disks without it',
    });
  }
  if (options.rootShare && !fs.statSync(options.rootShare, { throwIfNoEntry: false })?.isDirectory()) {
    throw new UsageError(`root directory ${options.rootShare} is not a directory`, {
      remedy: 'mount the container rootfs there first',
    });
  }
  const sshAgent = options.sshAgent ? sshAgentSetup(env, options.onSshAgentRefused) : undefined;
  for (const v of volumes) {
    if (!fs.statSync(v.hostPath, { throwIfNoEntry: false })?.isDirectory()) {
      throw new UsageError(`volume host path ${v.hostPath} is not a directory`, {
        remedy: `create it, or fix the volume ${v.hostPath}:${v.guestPath}`,
      });
    }
  }
  // Host ports are bound first, so a busy one fails before anything boots; released with the VM.
  const network = options.network ? await prepareNetwork(options.network, env) : undefined;
  /** The guest's setup request (the NIC's part once its gateway runs). */
  const setupFor = (gateway?: Gateway): SetupSpec => ({
    ...(options.hostname ? { hostname: options.hostname } : {}),
    ...(options.imageErofs ? { image: imageRoot(features, disks) } : {}),
    ...(options.rootShare ? { rootShare: { tag: ROOT_SHARE_TAG } } : {}),
    ...(options.persistent
      ? {
          upper: { device: guestDisk(features, disks, OVERLAY_DISK_ID), fstype: 'ext4' },
          workspace: { device: guestDisk(features, disks, STORAGE_DISK_ID), fstype: 'ext4' },
        }
      : {}),
    ...(volumes.length
      ? { volumes: volumes.map((v, i) => ({ tag: `vol${i}`, path: v.guestPath, readOnly: v.readOnly })) }
      : {}),
    ...(gateway ? network?.setup(gateway) : {}),
    ...(sshAgent ? { sshAgent: { socket: sshAgent.guestSocket } } : {}),
    ...(options.freshExecRoot ? { execRoot: 'fresh' as const } : {}),
  });
  let vm: Vm | undefined;
  let prepared: number;
  try {
    const bootOptions: BootOptions = {
      kernel,
      agentImage: options.packed
        ? packedAgentImage(options.packed.agentImage.path, options.packed.agentImage.key)
        : await ensureAgentImage(agentImageOptions(cacheDir, options)),
      ...(options.packed?.agentImage.range ? { agentRange: options.packed.agentImage.range } : {}),
      ...(options.packed?.runtime ? { runtime: options.packed.runtime } : {}),
      driver,
      features,
      cpus: options.cpus,
      memoryMiB: options.memoryMiB,
      imageErofs: options.imageErofs,
      ...(options.imageErofs && options.imageInSnapshot ? { imageInSnapshot: options.imageInSnapshot } : {}),
      ...(options.imageRange ? { imageRange: options.imageRange } : {}),
      rootShare: options.rootShare,
      volumes,
      persistent: options.persistent,
      env,
      bootTimeoutMs: options.bootTimeoutMs ?? 120_000,
    };
    if (!options.packed)
      bootOptions.agentImage = await agentImageFor(
        bootOptions,
        agentImageOptions(cacheDir, options),
        guestCpuOf(driver.name, probe),
      );
    prepared = Math.round(performance.now() - t0);
    const note = options.onNote ?? (() => undefined);
    // An early start is only of use to a restore of the same driver; anything else ends it.
    const early: EarlyStart = {
      parts: options.prestarted?.driver === driver.name ? options.prestarted.take() : undefined,
    };
    // One that set its guest up (a machine's supervisor) must have sent exactly this start's setup:
    // a guest set up otherwise cannot be set up again, so it is ended before it is taken over.
    const wanted = network ? undefined : earlySetupOf(setupFor());
    if (early.parts?.setup && JSON.stringify(early.parts.setup) !== JSON.stringify(wanted)) {
      discardParts(early.parts);
      early.parts = undefined;
      note('the early start set the guest up for another setup: restored again');
    }
    try {
      if (options.fromSnapshot) {
        const capability = driver.capabilities?.snapshot;
        if (!capability)
          throw new SnapshotError(`the ${driver.name} driver cannot restore snapshots`, {
            remedy: 'use the default driver',
          });
        const dir = options.fromSnapshot.stateDir;
        vm = await boot(
          {
            ...bootOptions,
            restored: true,
            bootTimeoutMs: RESTORE_READY_TIMEOUT_MS,
            start: (spec) => capability.restore(spec, dir),
          },
          t0,
          network,
        );
      } else if (options.bootSnapshot !== false) {
        const capability = driver.capabilities?.snapshot;
        const tooLarge = options.persistent ? diskLargerThanSlot(options.persistent) : undefined;
        if (!capability) note(`the ${driver.name} driver cannot restore boot snapshots: cold boot`);
        else if (tooLarge)
          note(
            `${tooLarge} is larger than a boot snapshot's disk slot (${MACHINE_SLOT_BYTES / 2 ** 40} TiB): cold boot`,
          );
        else vm = await warmStart(bootOptions, capability, cacheDir, note, t0, network, early);
      }
    } finally {
      if (early.parts) discardParts(early.parts);
    }
    vm ??= await boot(bootOptions, t0, network);
    vm.guestFiles = {
      driver: driver.name,
      kernel: { path: kernel },
      agentImage: {
        path: bootOptions.agentImage.path,
        ...(bootOptions.agentRange ? { range: bootOptions.agentRange } : {}),
      },
      ...(options.imageErofs
        ? { image: { path: options.imageErofs, ...(options.imageRange ? { range: options.imageRange } : {}) } }
        : {}),
      ...(bootOptions.runtime
        ? {
            runtime: {
              path: bootOptions.runtime.path,
              ...(bootOptions.runtime.range ? { range: bootOptions.runtime.range } : {}),
            },
          }
        : {}),
    };
  } catch (err) {
    await network?.close();
    throw err;
  }
  if (network) vm.addCleanup(() => network.close());
  vm.snapshotter = driver.capabilities?.snapshot;
  if (options.fromSnapshot) {
    return finishStart(vm, t0, prepared, async (vm) => {
      // The saved guest is set up already (root, disks, network, processes running): it only
      // becomes this copy. Every copy shares the saved RNG state until reseeded.
      // Its shares were unmounted for the save (QEMU cannot save a mounted 9p share): mounted again, now this copy's.
      // One round trip: the agent runs requests in the order they arrive, and reseed is done before
      // identity starts (both synchronous), so the copy's new boot_id comes from the reseeded RNG.
      await Promise.all([
        vm.agent.setTime(Date.now()),
        vm.agent.reseed(crypto.randomBytes(64)),
        ...(options.hostname ? [vm.agent.identity({ hostname: options.hostname })] : []),
        vm.agent.shares({ mounted: true }),
      ]);
      if (sshAgent) vm.agent.serveSshAgent(sshAgent.relay);
    });
  }
  return finishStart(vm, t0, prepared, async (vm) => {
    const early = vm.earlySetup;
    if (early) {
      // Set up by the early start with this very setup (checked before it was taken over). The
      // clock once more: the early one was read before the guest ran.
      await Promise.all([early.done, vm.agent.setTime(Date.now())]);
      if (vm.restoreRecipe) vm.restoreRecipe.setup = early.setup;
      return;
    }
    if (sshAgent) vm.agent.serveSshAgent(sshAgent.relay);
    const setup = setupFor(vm.network);
    // Sent back to back: the agent runs them in this order (each handler starts when its request
    // arrives), and a restored guest pays a round trip per request. A restored guest shares its
    // RNG state with every VM restored from the same snapshot: reseeded before anything mounts or runs.
    // An empty setup asks for the default root: the agent builds that on its own before the first
    // exec, and a bare snapshot holds it built. Not sending it spares a restored guest a request;
    // nor is one that only names the root a snapshot already holds (imageInSnapshot).
    const rootOnly =
      Object.keys(setup).length === 0 ||
      (vm.restored && options.imageInSnapshot !== undefined && Object.keys(setup).join() === 'image');
    await Promise.all([
      vm.agent.setTime(Date.now()),
      ...(vm.restored ? [vm.agent.reseed(crypto.randomBytes(64))] : []),
      ...(rootOnly ? [] : [vm.agent.setup(setup)]),
    ]);
    // The next start of this machine can send it from its early start (prestart.ts).
    const recipeSetup = earlySetupOf(setup);
    if (vm.restoreRecipe && recipeSetup && !rootOnly) vm.restoreRecipe.setup = recipeSetup;
  });
}

/**
 * The setup an early start may send for the next start (RunRecipe.setup): a machine's only (its
 * supervisor runs the early guest), and never one with a NIC or an SSH agent, whose host ends
 * exist only once the start runs.
 */
function earlySetupOf(setup: SetupSpec): Record<string, unknown> | undefined {
  return setup.upper && !setup.network && !setup.sshAgent ? { ...setup } : undefined;
}

/** The guest's last start-up steps: on failure the VM is ended; else it gets its timings. */
async function finishStart(vm: Vm, t0: number, prepared: number, steps: (vm: Vm) => Promise<void>): Promise<Vm> {
  try {
    await steps(vm);
  } catch (err) {
    await vm.kill();
    throw err;
  }
  vm.timings.prepared = prepared;
  vm.timings.setUp = Math.round(performance.now() - t0);
  return vm;
}
