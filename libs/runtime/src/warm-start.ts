// Warm starts (docs/architecture.md#warm-starts): a VM restored from the boot snapshot of its
// shape instead of booted, the snapshot saved by the first start of that shape (a cold boot with
// nothing of the user's in it). Whatever fails here falls back to a cold boot, and leaves nothing.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { markUsed } from '@smolvm/common';
import {
  PrestartMismatchError,
  SnapshotError,
  SnapshotTimeoutError,
  type SnapshotCapability,
  type VmHandle,
} from '@smolvm/driver-api';
import { DEFAULT_NETWORK, startGateway, staticResolver } from '@smolvm/netpolicy';
import { PACKED_KEY_PREFIX } from './agent-blob';
import { AgentTimeoutError, boot, type BootOptions } from './boot';
import {
  MACHINE_SLOT_BYTES,
  SnapshotStaging,
  discardSnapshot,
  findSnapshot,
  snapshotKey,
  snapshotRoot,
  type FoundSnapshot,
  type SnapshotKey,
} from './boot-snapshot';
import { imageRoot } from './layout';
import type { PreparedNetwork } from './network';
import type { PrestartedParts } from './prestart';
import type { Vm } from './vm';

/**
 * A restored guest keeps the disk capacity it saw when the snapshot was saved (its slots' size):
 * a machine disk past it would not fit. The disk that does not, if one.
 */
export function diskLargerThanSlot(disks: { overlayDisk: string; storageDisk: string }): string | undefined {
  return [disks.overlayDisk, disks.storageDisk].find(
    (disk) => (fs.statSync(disk, { throwIfNoEntry: false })?.size ?? 0) > MACHINE_SLOT_BYTES,
  );
}

/** An early start's parts until a boot() takes them; whatever is left is discarded. */
export interface EarlyStart {
  parts?: PrestartedParts;
}

/**
 * A restored agent answers in well under a second on an idle host, but in tens of seconds when
 * dozens of VMs start at once on a few cores (each gets a sliver of CPU): the same bound as a
 * boot's. A restore that went wrong mostly ends QEMU, which boot() sees at once.
 */
export const RESTORE_READY_TIMEOUT_MS = 120_000;

/**
 * Restores the VM from the boot snapshot of its shape, saving that snapshot first if there is
 * none (a cold boot of this shape). Undefined, after a note, when the caller must cold-boot:
 * nothing a failed snapshot did is left behind, and a snapshot that failed to restore is dropped
 * so the next start rebuilds it.
 */
export async function warmStart(
  options: BootOptions,
  capability: SnapshotCapability,
  cacheDir: string,
  note: (m: string) => void,
  t0: number,
  network?: PreparedNetwork,
  early: EarlyStart = {},
): Promise<Vm | undefined> {
  const root = snapshotRoot(cacheDir);
  let found: FoundSnapshot;
  try {
    const k = await snapshotKey(
      options.driver.name,
      capability,
      {
        kernel: options.kernel,
        agentImage: options.agentImage,
        cpus: options.cpus,
        memoryMiB: options.memoryMiB,
        shares: options.volumes.length,
        network: network !== undefined,
        // A machine's root is on its overlay disk: never one built in the snapshot.
        root: options.rootShare
          ? 'share-root'
          : !options.imageErofs
            ? 'bare'
            : options.imageInSnapshot && !options.persistent
              ? { image: { id: options.imageInSnapshot, file: options.imageErofs } }
              : 'image-slot',
        machineDisks: options.persistent !== undefined,
        ...(options.runtime ? { runtime: options.runtime.sha256 } : {}),
        // A pack's kernel and agent make a family of shapes of their own, so that packed runs and
        // `machine run` do not keep replacing each other's snapshot of the same shape.
        ...(options.agentImage.key.startsWith(PACKED_KEY_PREFIX) ? { family: `packed:${options.agentImage.key}` } : {}),
      },
      root,
    );
    const lookup = findSnapshot(root, k);
    if ('note' in lookup) {
      note(`${lookup.note}: cold boot to save one, then restore it`);
      found = await saveSnapshot(options, capability, root, k, network !== undefined);
    } else {
      found = lookup;
    }
  } catch (err) {
    note(`no boot snapshot (${(err as Error).message}): cold boot`);
    return undefined;
  }
  // Recipes are kept for restores without a NIC only: an early start has no gateway to connect to.
  // A machine's recipe names its own disks: its supervisor starts it early (the starter holds the machine's lock).
  const restoring: BootOptions = {
    ...options,
    restored: true,
    bootTimeoutMs: RESTORE_READY_TIMEOUT_MS,
    ...(network || !capability.restoreRecipe
      ? {}
      : { recipeOf: (handle: VmHandle, runDir: string) => capability.restoreRecipe?.(handle, runDir) }),
  };
  try {
    let vm: Vm | undefined;
    // From here boot() owns the early start's parts (it removes them if it fails).
    const parts = early.parts;
    early.parts = undefined;
    if (parts) {
      try {
        vm = await boot(
          { ...restoring, start: (spec) => capability.restore(spec, found.dir, { prestarted: parts.restore }) },
          t0,
          network,
          parts,
        );
        vm.timings.prestartLead = Math.round(t0 - parts.startedAt);
      } catch (err) {
        // Not the restore this start needs (or it failed before being needed): restore as usual.
        if (!(err instanceof PrestartMismatchError)) throw err;
        note(`the early start was not used (${err.message})`);
      }
    }
    // The restored NIC's backend connects to this run's own gateway (a new socket, like the agent's).
    // The run's image takes the image slot's place; a bare VM's snapshot has no slot, and one with
    // its image in the snapshot gets that same image again.
    vm ??= await boot({ ...restoring, start: (spec) => capability.restore(spec, found.dir) }, t0, network);
    if (vm.agentInfo.pid !== found.agentPid || vm.agentInfo.reconnect !== true) {
      await vm.kill();
      throw new SnapshotError(
        `the restored agent is not the saved one (pid ${String(vm.agentInfo.pid)}, saved ${found.agentPid})`,
      );
    }
    if (vm.restoreRecipe) vm.restoreRecipe.state = { file: path.join(found.dir, 'state'), sha256: found.stateSha256 };
    // Snapshots no restore used for a day are evicted when another is saved.
    markUsed(found.dir);
    return vm;
  } catch (err) {
    // Out of time on a starved host: the snapshot is fine, and neither a cold boot (several times
    // the CPU of a restore) nor dropping it (every later start would boot and save one) helps.
    if (err instanceof AgentTimeoutError || err instanceof SnapshotTimeoutError) throw err;
    note(
      `restoring the boot snapshot failed (${(err as Error).message}): cold boot; the snapshot is dropped and rebuilt by the next start`,
    );
    discardSnapshot(root, found.dir);
    return undefined;
  }
}

/**
 * The NIC of a VM being saved needs a backend, but nothing of the user's: a gateway that lets
 * nothing out and forwards no ports. The guest does not even bring the NIC up before its setup,
 * which runs after a restore.
 */
function snapshotNetwork(): PreparedNetwork {
  return {
    mac: DEFAULT_NETWORK.guestMac,
    start: (socketPath) => startGateway({ policy: { denyAll: true }, socketPath, resolver: staticResolver({}) }),
    setup: () => ({}),
    close: async () => undefined,
  };
}

/**
 * Boots a VM of this shape with nothing of the user's in it, runs once what restored VMs of the
 * shape will run first (clock, RNG, for bare VMs the root and an exec), saves it, publishes it.
 */
async function saveSnapshot(
  options: BootOptions,
  capability: SnapshotCapability,
  root: string,
  k: SnapshotKey,
  withNic: boolean,
): Promise<FoundSnapshot> {
  // The root is built before the save for bare VMs, on the agent's root or on an image known in
  // advance; a machine's root lives on its overlay disk, so its snapshot has none.
  const rootBuilt =
    !options.persistent && !options.rootShare && (!options.imageErofs || options.imageInSnapshot !== undefined);
  const staging = new SnapshotStaging(root, {
    imageSlot: options.imageErofs !== undefined && !rootBuilt,
    machineDisks: options.persistent !== undefined,
  });
  try {
    const vm = await boot(
      {
        ...options,
        imageErofs: rootBuilt ? options.imageErofs : undefined,
        imageSlot: staging.imageSlot,
        // The saved guest mounts no root: a restore's setup makes the run's directory its root.
        rootShare: options.rootShare ? staging.emptyShare : undefined,
        volumes: options.volumes.map((v) => ({ hostPath: staging.emptyShare, guestPath: v.guestPath, readOnly: true })),
        // Placeholders the saved guest never mounts: nothing of any machine's disks is in a snapshot.
        persistent: staging.machineSlots,
        start: (spec) => capability.startSaveable(spec, staging.dir),
      },
      performance.now(),
      withNic ? snapshotNetwork() : undefined,
    );
    let agentPid: unknown;
    try {
      agentPid = vm.agentInfo.pid;
      if (typeof agentPid !== 'number') throw new SnapshotError('the agent did not report its pid');
      await vm.agent.setTime(Date.now());
      await vm.agent.reseed(crypto.randomBytes(64));
      if (rootBuilt) {
        // Every bare run builds the same root: built once here, restores only configure their run.
        await vm.agent.setupRoot(
          options.imageErofs ? { image: imageRoot(options.features, { image: true, machineDisks: false }) } : {},
        );
        const session = await vm.exec({ argv: ['true'] });
        session.stdout.resume();
        session.stderr.resume();
        const exit = await session.exit;
        if (exit.code !== 0)
          throw new SnapshotError(`the warm-up exec in the saved VM failed (${exit.signal ?? `exit ${exit.code}`})`);
      }
      await vm.agent.prepareSnapshot();
      // Saved without a host connected, the guest agent waits for one: a restored VM greets its new host.
      vm.agent.close();
      await capability.save(vm.handle, staging.dir);
    } finally {
      await vm.kill();
    }
    staging.commit(k, agentPid);
  } catch (err) {
    staging.discard();
    throw err;
  }
  // Ours, or the one a concurrent start published first.
  const found = findSnapshot(root, k);
  if ('note' in found) throw new SnapshotError(found.note);
  return found;
}
