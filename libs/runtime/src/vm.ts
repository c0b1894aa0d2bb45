// One VM for one workload: the composition of kernel, agent image, driver and agent channel.
// startVm() returns only once the agent is ready and the guest root is set up; on any failure
// it has already removed everything it made (VM, sockets, files).
import crypto from 'node:crypto';
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { SmolvmError, UsageError, markUsed, smolvmDirs, withTimeout, writeFileAtomic } from '@smolvm/common';
import type { VolumeMount } from '@smolvm/config';
import { AgentClient, type AgentInfo, type ExecOptions, type ExecSession, type SetupSpec } from '@smolvm/agent-protocol';
import { AGENT_DISK_ID, agentKernelArgs, buildSnapshotInGuest, ensureAgentImage, snapshotBlobPath, type AgentImage, type AgentImageOptions } from '@smolvm/agent-image';
import {
  SnapshotError,
  SnapshotTimeoutError,
  VmStartError,
  boundConsoleLog,
  readLogTail,
  selectDriver,
  type BlockDeviceSpec,
  type Driver,
  type NetworkEndpointSpec,
  PrestartMismatchError,
  type SnapshotCapability,
  type VmExit,
  type VmHandle,
  type VmSpec,
} from '@smolvm/driver-api';
import { DEFAULT_NETWORK, startGateway, staticResolver, type Gateway } from '@smolvm/netpolicy';
import { MACHINE_SLOT_BYTES, SnapshotStaging, discardSnapshot, findSnapshot, snapshotKey, snapshotRoot, type FoundSnapshot, type SnapshotKey } from './boot-snapshot';
import { locateKernel } from './kernel';
import { prepareNetwork, sshAgentSetup, type NetworkOptions, type PreparedNetwork } from './network';
import { agentSocketPath, discardParts, listenOnce, type PrestartedParts, type PrestartedRun, type RunRecipe } from './prestart';
import { createRunDir, type RunDir } from './run-dir';

/** Disk serial of the per-run image disk; the agent mounts it as the overlay's lower layer. */
export const IMAGE_DISK_ID = 'smolvm-image';
/** Disk serials of a persistent machine's overlay (upper layer) and storage (/workspace) disks. */
export const OVERLAY_DISK_ID = 'smolvm-overlay';
export const STORAGE_DISK_ID = 'smolvm-storage';
/** The image disk as the overlay's lower layer, in the same words for setup and setupRoot (the agent compares them). */
const IMAGE_ROOT: NonNullable<SetupSpec['image']> = { device: { serial: IMAGE_DISK_ID }, fstype: 'erofs' };
/** 9p tag of `rootShare`. */
const ROOT_SHARE_TAG = 'root';

/** A persistent machine's disks; qcow2 for snapshot forks (copy-on-write over the snapshot's). */
export interface PersistentDisks {
  overlayDisk: string;
  storageDisk: string;
  format?: 'raw' | 'qcow2';
}

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
  packed?: { kernel: string; agentImage: { path: string; range?: DiskRange; key: string } };
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

/** Milliseconds from the start of startVm(). */
export interface BootTimings {
  prepared: number;
  spawned: number;
  agentReady: number;
  setUp: number;
  /** Milliseconds from an early start (StartVmOptions.prestarted) to startVm(), when one was used. */
  prestartLead?: number;
}

export class Vm {
  private disposing?: Promise<VmExit>;
  /** Run once the VM has ended (the network gateway, port listeners). */
  private readonly cleanups: Array<() => Promise<void>> = [];
  /** The VM's network gateway, when it has a NIC. */
  network?: Gateway;
  /**
   * Whether a stop must go through the guest (sync, power-off): true when something outside its
   * RAM may hold its writes (9p volumes, machine disks). A VM whose whole state is its RAM is
   * simply ended: nothing is lost, and the run finishes sooner.
   */
  flushOnStop = true;
  /** A restored VM: how to begin the next identical restore early (see prestart.ts). */
  restoreRecipe?: RunRecipe;
  /** The driver's snapshot capability, for snapshotRunning. */
  snapshotter?: SnapshotCapability;
  /** Trims the console log while the VM runs; stopped before its descriptor is closed. */
  private readonly consoleBound: { stop(): void };

  constructor(
    readonly agent: AgentClient,
    readonly handle: VmHandle,
    readonly timings: BootTimings,
    /** What the agent reported about itself when ready (guest uptime, agent start time...). */
    readonly agentInfo: AgentInfo,
    private readonly consoleFd: number,
    /** True when the VM came from a boot snapshot rather than a boot. */
    readonly restored = false,
  ) {
    this.consoleBound = boundConsoleLog(consoleFd);
  }

  exec(options: ExecOptions): Promise<ExecSession> {
    return this.agent.exec(options);
  }

  /** The last lines the guest printed on its console (kernel messages, init errors). */
  consoleTail(lines = 20): string[] {
    // The log file itself is already unlinked; our descriptor still reads it.
    return readLogTail(`/proc/self/fd/${this.consoleFd}`, lines);
  }

  /**
   * Powers the guest off through the agent (see flushOnStop) and waits for the VM to end, ending
   * it harder after `graceMs`. Idempotent; never rejects.
   */
  dispose(graceMs = 5_000): Promise<VmExit> {
    this.disposing ??= (async () => {
      let exit: VmExit;
      if (this.flushOnStop) {
        try {
          await withTimeout(this.agent.shutdown(), graceMs, 'the guest shutdown');
        } catch {
          // An agent that does not answer is ended by the driver below.
        }
        exit = await this.handle.stop({ timeoutMs: graceMs });
      } else {
        exit = await this.handle.kill();
      }
      this.agent.close();
      this.consoleBound.stop();
      fs.closeSync(this.consoleFd);
      for (const cleanup of this.cleanups.splice(0)) await cleanup().catch(() => undefined);
      return exit;
    })();
    return this.disposing;
  }

  /**
   * Saves the running VM into `stateDir` (empty, private) for StartVmOptions.fromSnapshot; the
   * guest is paused only while its state is taken and `whilePaused` copies its writable disks
   * (returning the copies by disk id). Throws SnapshotError, the VM running again.
   */
  async snapshotRunning(stateDir: string, whilePaused: () => Promise<{ overlayDisk: string; storageDisk: string }>): Promise<void> {
    const snapshotRunning = this.snapshotter?.snapshotRunning?.bind(this.snapshotter);
    if (!snapshotRunning) throw new SnapshotError('this driver cannot snapshot a running VM', { remedy: 'stop the machine and snapshot it while stopped' });
    await snapshotRunning(this.handle, stateDir, async () => {
      const copies = await whilePaused();
      return { [OVERLAY_DISK_ID]: copies.overlayDisk, [STORAGE_DISK_ID]: copies.storageDisk };
    });
  }

  /** Runs `fn` after the VM has ended, when it is disposed or killed. */
  addCleanup(fn: () => Promise<void>): void {
    this.cleanups.push(fn);
  }

  /** Ends the VM at once. */
  async kill(): Promise<VmExit> {
    const exit = await this.handle.kill();
    return this.dispose(0).then(() => exit);
  }
}

interface BootOptions {
  /** How the VM starts: a boot by default; a saveable boot or a restore for snapshots. */
  start?: (spec: VmSpec) => Promise<VmHandle>;
  /** The image disk's file when no image is given: the placeholder an image-slot snapshot is saved with. */
  imageSlot?: string;
  restored?: boolean;
  /** For restores: the driver's recipe of the handle, `runDir` being the run's directory. */
  recipeOf?: (handle: VmHandle, runDir: string) => unknown;
  kernel: string;
  agentImage: AgentImage;
  driver: Driver;
  cpus: number;
  memoryMiB: number;
  imageErofs?: string;
  /** See StartVmOptions.imageInSnapshot. */
  imageInSnapshot?: string;
  imageRange?: DiskRange;
  agentRange?: DiskRange;
  rootShare?: string;
  volumes: VolumeMount[];
  persistent?: PersistentDisks;
  env: NodeJS.ProcessEnv;
  bootTimeoutMs: number;
}

/** The VM ran, but its agent did not answer in time (see warmStart: the snapshot is not to blame). */
class AgentTimeoutError extends VmStartError {}
/** A byte range of a file that is a disk. */
export interface DiskRange {
  offset: number;
  size: number;
}

const PACKED_KEY_PREFIX = 'packed-';

function requireAgentBundle(options: StartVmOptions): string {
  if (!options.agentBundle) throw new SmolvmError('startVm needs agentBundle unless the VM is packed');
  return options.agentBundle;
}

/** A pack's agent image as the boot path wants it: booted as it is. */
function packedAgentImage(file: string, key: string): AgentImage {
  return { path: file, key: `${PACKED_KEY_PREFIX}${key}`, kernelArgs: agentKernelArgs(), diskId: AGENT_DISK_ID, built: false };
}

/** Boots a VM and waits for its agent; on failure nothing it made is left. */
async function boot(options: BootOptions, t0: number, network?: PreparedNetwork, prestarted?: PrestartedParts): Promise<Vm> {
  const since = () => Math.round(performance.now() - t0);
  const { agentImage, volumes } = options;
  // An early start (prestart.ts) made the run directory and listens on its agent socket already.
  const runDir: RunDir = prestarted?.runDir ?? createRunDir('vm', options.env);
  const agentSocket = agentSocketPath(runDir.path);
  const consoleLog = path.join(runDir.path, 'console.log');
  let server: net.Server | undefined;
  let handle: VmHandle | undefined;
  let client: AgentClient | undefined;
  let gateway: Gateway | undefined;
  try {
    const listening = prestarted?.agent ?? listenOnce(agentSocket);
    server = listening.server;
    if (!prestarted) await listening.ready;
    let nic: NetworkEndpointSpec | undefined;
    if (network) {
      // Like the agent socket: the gateway listens first, QEMU connects as a client.
      nic = { socketPath: path.join(runDir.path, 'net.sock'), mac: network.mac };
      gateway = await network.start(nic.socketPath);
    }
    const disks: BlockDeviceSpec[] = [{ id: agentImage.diskId, path: agentImage.path, readOnly: true, format: 'raw', ...(options.agentRange ? { range: options.agentRange } : {}) }];
    if (options.imageErofs) disks.push({ id: IMAGE_DISK_ID, path: options.imageErofs, readOnly: true, format: 'raw', ...(options.imageRange ? { range: options.imageRange } : {}) });
    else if (options.imageSlot) disks.push({ id: IMAGE_DISK_ID, path: options.imageSlot, readOnly: true, format: 'raw' });
    if (options.persistent) {
      const format = options.persistent.format ?? 'raw';
      disks.push({ id: OVERLAY_DISK_ID, path: options.persistent.overlayDisk, readOnly: false, format });
      disks.push({ id: STORAGE_DISK_ID, path: options.persistent.storageDisk, readOnly: false, format });
    }
    const start = options.start ?? ((spec: VmSpec) => options.driver.start(spec));
    handle = await start({
      kernel: options.kernel,
      cmdline: agentImage.kernelArgs,
      cpus: options.cpus,
      memoryMiB: options.memoryMiB,
      disks,
      shares: [
        ...volumes.map((v, i) => ({ tag: `vol${i}`, hostPath: v.hostPath, readOnly: v.readOnly })),
        ...(options.rootShare ? [{ tag: ROOT_SHARE_TAG, hostPath: options.rootShare, readOnly: false, hostOwnership: true }] : []),
      ],
      agent: { socketPath: agentSocket },
      ...(nic ? { network: nic } : {}),
      consoleLog,
      runDir: path.join(runDir.path, 'driver'),
    });
    const spawned = since();
    const vmHandle = handle;

    let timer: NodeJS.Timeout | undefined;
    const failure = new Promise<never>((_, reject) => {
      void vmHandle.wait().then((exit) => {
        reject(new VmStartError(`the VM ended before its agent was ready (${exit.detail ?? exit.reason})`, { consoleTail: readLogTail(consoleLog), hypervisorOutput: exit.hypervisorOutput }));
      });
      timer = setTimeout(() => {
        reject(new AgentTimeoutError(`the agent was not ready after ${Math.round(options.bootTimeoutMs / 1000)} s`, { consoleTail: readLogTail(consoleLog) }, { remedy: 'the host may be overloaded; try again, or give the VM fewer vCPUs' }));
      }, options.bootTimeoutMs);
    });
    failure.catch(() => undefined);
    let agentInfo: AgentInfo;
    try {
      const socket = await Promise.race([listening.connection, failure]);
      client = new AgentClient(socket);
      agentInfo = await Promise.race([client.waitReady(), failure]);
    } finally {
      clearTimeout(timer);
    }
    const agentReady = since();

    // Nothing on disk needs to outlive boot: QEMU holds its connections and the console log
    // open, and we keep a descriptor to read the log and trim it (so writable). A SIGKILLed CLI
    // then leaves no files.
    const consoleFd = fs.openSync(consoleLog, 'r+');
    const recipe = options.recipeOf?.(handle, runDir.path);
    server.close();
    server = undefined;
    runDir.remove();
    // startVm fills in `prepared` and `setUp`, which happen outside boot.
    const vm = new Vm(client, handle, { prepared: 0, spawned, agentReady, setUp: agentReady }, agentInfo, consoleFd, options.restored ?? false);
    vm.flushOnStop = volumes.length > 0 || options.persistent !== undefined || options.rootShare !== undefined;
    if (recipe !== undefined) vm.restoreRecipe = { v: 1, driver: options.driver.name, restore: recipe };
    if (gateway) {
      const gw = gateway;
      vm.network = gw;
      vm.addCleanup(() => gw.close());
    }
    return vm;
  } catch (err) {
    client?.close();
    if (handle) await handle.kill();
    await gateway?.close();
    server?.close();
    runDir.remove();
    if (err instanceof SmolvmError) throw err;
    throw new SmolvmError(`starting the VM failed: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The agent image to boot. V8 ties a startup snapshot to the CPU it was built on, so the blob is
 * built once per guest CPU model inside a VM of the plain image, then baked into a second image.
 * Best effort: without a snapshot the agent starts from its bundle, only slower.
 */
function agentImageOptions(cacheDir: string, options: StartVmOptions): AgentImageOptions {
  const { node, busybox, koffiFrom } = options.guestAssets ?? {};
  return { cacheDir, agentBundle: requireAgentBundle(options), ...(node ? { node } : {}), ...(busybox ? { busybox } : {}), ...(koffiFrom ? { koffiFrom } : {}) };
}

async function agentImageFor(options: BootOptions, imageOptions: AgentImageOptions, accelerator: string): Promise<AgentImage> {
  const plain = options.agentImage;
  if (options.env.SMOLVM_AGENT_SNAPSHOT === '0') return plain;
  const blob = snapshotBlobPath(imageOptions.cacheDir, plain.key, guestCpuModel(accelerator));
  if (!fs.existsSync(blob)) {
    try {
      const vm = await boot({ ...options, cpus: 1, memoryMiB: 1024, imageErofs: undefined, volumes: [], persistent: undefined }, performance.now());
      try {
        writeFileAtomic(blob, await buildSnapshotInGuest(vm.agent));
      } finally {
        await vm.dispose();
      }
    } catch {
      return plain;
    }
  }
  return ensureAgentImage({ ...imageOptions, snapshot: { blob } });
}

/** What a snapshot depends on: the accelerator (TCG's `max` CPU or KVM's host CPU) and the host CPU's features. */
function guestCpuModel(accelerator: string): string {
  let flags = '';
  try {
    flags = /^flags\s*:(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
  } catch {
    // No /proc/cpuinfo: the accelerator alone names the model.
  }
  return `${accelerator}-${crypto.createHash('sha256').update(flags).digest('hex').slice(0, 12)}`;
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
  if (options.rootShare && (options.imageErofs || options.persistent)) {
    throw new UsageError('a VM whose root is a host directory has no image and no machine disks', { remedy: 'give rootShare alone, or an image / persistent disks without it' });
  }
  if (options.rootShare && !fs.statSync(options.rootShare, { throwIfNoEntry: false })?.isDirectory()) {
    throw new UsageError(`root directory ${options.rootShare} is not a directory`, { remedy: 'mount the container rootfs there first' });
  }
  const sshAgent = options.sshAgent ? sshAgentSetup(env, options.onSshAgentRefused) : undefined;
  for (const v of volumes) {
    if (!fs.statSync(v.hostPath, { throwIfNoEntry: false })?.isDirectory()) {
      throw new UsageError(`volume host path ${v.hostPath} is not a directory`, { remedy: `create it, or fix the volume ${v.hostPath}:${v.guestPath}` });
    }
  }
  // Host ports are bound first, so a busy one fails before anything boots; released with the VM.
  const network = options.network ? await prepareNetwork(options.network, env) : undefined;
  let vm: Vm | undefined;
  let prepared: number;
  try {
    const bootOptions: BootOptions = {
      kernel,
      agentImage: options.packed ? packedAgentImage(options.packed.agentImage.path, options.packed.agentImage.key) : await ensureAgentImage(agentImageOptions(cacheDir, options)),
      ...(options.packed?.agentImage.range ? { agentRange: options.packed.agentImage.range } : {}),
      driver,
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
    if (!options.packed) bootOptions.agentImage = await agentImageFor(bootOptions, agentImageOptions(cacheDir, options), `${driver.name}-${probe.accelerator ?? 'default'}`);
    prepared = Math.round(performance.now() - t0);
    const note = options.onNote ?? (() => undefined);
    // An early start is only of use to a restore of the same driver; anything else ends it.
    const early: EarlyStart = { parts: options.prestarted?.driver === driver.name ? options.prestarted.take() : undefined };
    try {
      if (options.fromSnapshot) {
        const capability = driver.capabilities?.snapshot;
        if (!capability) throw new SnapshotError(`the ${driver.name} driver cannot restore snapshots`, { remedy: 'use the default driver' });
        const dir = options.fromSnapshot.stateDir;
        vm = await boot({ ...bootOptions, restored: true, bootTimeoutMs: RESTORE_READY_TIMEOUT_MS, start: (spec) => capability.restore(spec, dir) }, t0, network);
      } else if (options.bootSnapshot !== false) {
        const capability = driver.capabilities?.snapshot;
        const tooLarge = options.persistent ? diskLargerThanSlot(options.persistent) : undefined;
        if (!capability) note(`the ${driver.name} driver cannot restore boot snapshots: cold boot`);
        else if (tooLarge) note(`${tooLarge} is larger than a boot snapshot's disk slot (${MACHINE_SLOT_BYTES / 2 ** 40} TiB): cold boot`);
        else vm = await warmStart(bootOptions, capability, cacheDir, note, t0, network, early);
      }
    } finally {
      if (early.parts) discardParts(early.parts);
    }
    vm ??= await boot(bootOptions, t0, network);
  } catch (err) {
    await network?.close();
    throw err;
  }
  if (network) vm.addCleanup(() => network.close());
  vm.snapshotter = driver.capabilities?.snapshot;
  if (options.fromSnapshot) {
    try {
      // The saved guest is set up already (root, disks, network, processes running): it only
      // becomes this copy. Every copy shares the saved RNG state until reseeded.
      // Its shares were unmounted for the save (QEMU cannot save a mounted 9p share): mounted again, now this copy's.
      // Reseeded first: the copy's new boot_id (identity) comes from the kernel's RNG.
      await Promise.all([vm.agent.setTime(Date.now()), vm.agent.reseed(crypto.randomBytes(64))]);
      await Promise.all([...(options.hostname ? [vm.agent.identity({ hostname: options.hostname })] : []), vm.agent.shares({ mounted: true })]);
      if (sshAgent) vm.agent.serveSshAgent(sshAgent.relay);
    } catch (err) {
      await vm.kill();
      throw err;
    }
    vm.timings.prepared = prepared;
    vm.timings.setUp = Math.round(performance.now() - t0);
    return vm;
  }
  try {
    if (sshAgent) vm.agent.serveSshAgent(sshAgent.relay);
    const setup: SetupSpec = {
      ...(options.hostname ? { hostname: options.hostname } : {}),
      ...(options.imageErofs ? { image: IMAGE_ROOT } : {}),
      ...(options.rootShare ? { rootShare: { tag: ROOT_SHARE_TAG } } : {}),
      ...(options.persistent
        ? { upper: { device: { serial: OVERLAY_DISK_ID }, fstype: 'ext4' }, workspace: { device: { serial: STORAGE_DISK_ID }, fstype: 'ext4' } }
        : {}),
      ...(volumes.length ? { volumes: volumes.map((v, i) => ({ tag: `vol${i}`, path: v.guestPath, readOnly: v.readOnly })) } : {}),
      ...(vm.network ? network?.setup(vm.network) : {}),
      ...(sshAgent ? { sshAgent: { socket: sshAgent.guestSocket } } : {}),
      ...(options.freshExecRoot ? { execRoot: 'fresh' as const } : {}),
    };
    // Sent back to back: the agent runs them in this order (each handler starts when its request
    // arrives), and a restored guest pays a round trip per request. A restored guest shares its
    // RNG state with every VM restored from the same snapshot: reseeded before anything mounts or runs.
    // An empty setup asks for the default root: the agent builds that on its own before the first
    // exec, and a bare snapshot holds it built. Not sending it spares a restored guest a request;
    // nor is one that only names the root a snapshot already holds (imageInSnapshot).
    const rootOnly = Object.keys(setup).length === 0 || (vm.restored && options.imageInSnapshot !== undefined && Object.keys(setup).join() === 'image');
    await Promise.all([
      vm.agent.setTime(Date.now()),
      ...(vm.restored ? [vm.agent.reseed(crypto.randomBytes(64))] : []),
      ...(rootOnly ? [] : [vm.agent.setup(setup)]),
    ]);
  } catch (err) {
    await vm.kill();
    throw err;
  }
  vm.timings.prepared = prepared;
  vm.timings.setUp = Math.round(performance.now() - t0);
  return vm;
}

/**
 * A restored guest keeps the disk capacity it saw when the snapshot was saved (its slots' size):
 * a machine disk past it would not fit. The disk that does not, if one.
 */
function diskLargerThanSlot(disks: { overlayDisk: string; storageDisk: string }): string | undefined {
  return [disks.overlayDisk, disks.storageDisk].find((disk) => (fs.statSync(disk, { throwIfNoEntry: false })?.size ?? 0) > MACHINE_SLOT_BYTES);
}

/** An early start's parts until a boot() takes them; whatever is left is discarded. */
interface EarlyStart {
  parts?: PrestartedParts;
}

/**
 * A restored agent answers in well under a second on an idle host, but in tens of seconds when
 * dozens of VMs start at once on a few cores (each gets a sliver of CPU): the same bound as a
 * boot's. A restore that went wrong mostly ends QEMU, which boot() sees at once.
 */
const RESTORE_READY_TIMEOUT_MS = 120_000;

/**
 * Restores the VM from the boot snapshot of its shape, saving that snapshot first if there is
 * none (a cold boot of this shape). Undefined, after a note, when the caller must cold-boot:
 * nothing a failed snapshot did is left behind, and a snapshot that failed to restore is dropped
 * so the next start rebuilds it.
 */
async function warmStart(options: BootOptions, capability: SnapshotCapability, cacheDir: string, note: (m: string) => void, t0: number, network?: PreparedNetwork, early: EarlyStart = {}): Promise<Vm | undefined> {
  const root = snapshotRoot(cacheDir);
  let found: FoundSnapshot;
  try {
    const k = await snapshotKey(options.driver.name, capability, {
      kernel: options.kernel,
      agentImage: options.agentImage,
      cpus: options.cpus,
      memoryMiB: options.memoryMiB,
      shares: options.volumes.length,
      network: network !== undefined,
      // A machine's root is on its overlay disk: never one built in the snapshot.
      root: options.rootShare ? 'share-root' : !options.imageErofs ? 'bare' : options.imageInSnapshot && !options.persistent ? { image: { id: options.imageInSnapshot, file: options.imageErofs } } : 'image-slot',
      machineDisks: options.persistent !== undefined,
      // A pack's kernel and agent make a family of shapes of their own, so that packed runs and
      // `machine run` do not keep replacing each other's snapshot of the same shape.
      ...(options.agentImage.key.startsWith(PACKED_KEY_PREFIX) ? { family: `packed:${options.agentImage.key}` } : {}),
    });
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
  // Nor for machines: their starts go through the supervisor, which has no early start.
  const restoring: BootOptions = {
    ...options,
    restored: true,
    bootTimeoutMs: RESTORE_READY_TIMEOUT_MS,
    ...(network || options.persistent || !capability.restoreRecipe ? {} : { recipeOf: (handle: VmHandle, runDir: string) => capability.restoreRecipe?.(handle, runDir) }),
  };
  try {
    let vm: Vm | undefined;
    // From here boot() owns the early start's parts (it removes them if it fails).
    const parts = early.parts;
    early.parts = undefined;
    if (parts) {
      try {
        vm = await boot({ ...restoring, start: (spec) => capability.restore(spec, found.dir, { prestarted: parts.restore }) }, t0, network, parts);
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
      throw new SnapshotError(`the restored agent is not the saved one (pid ${String(vm.agentInfo.pid)}, saved ${found.agentPid})`);
    }
    // Snapshots no restore used for a day are evicted when another is saved.
    markUsed(found.dir);
    return vm;
  } catch (err) {
    // Out of time on a starved host: the snapshot is fine, and neither a cold boot (several times
    // the CPU of a restore) nor dropping it (every later start would boot and save one) helps.
    if (err instanceof AgentTimeoutError || err instanceof SnapshotTimeoutError) throw err;
    note(`restoring the boot snapshot failed (${(err as Error).message}): cold boot; the snapshot is dropped and rebuilt by the next start`);
    discardSnapshot(root, found.dir);
    return undefined;
  }
}

/**
 * The NIC of a VM being saved needs a backend, but nothing of the user's: a gateway that lets
 * nothing out (TEST-NET-1's first address is never reachable) and forwards no ports. The guest
 * does not even bring the NIC up before its setup, which runs after a restore.
 */
function snapshotNetwork(): PreparedNetwork {
  return {
    mac: DEFAULT_NETWORK.guestMac,
    start: (socketPath) => startGateway({ policy: { allowCidrs: ['192.0.2.0/32'] }, socketPath, resolver: staticResolver({}) }),
    setup: () => ({}),
    close: async () => undefined,
  };
}

/**
 * Boots a VM of this shape with nothing of the user's in it, runs once what restored VMs of the
 * shape will run first (clock, RNG, for bare VMs the root and an exec), saves it, publishes it.
 */
async function saveSnapshot(options: BootOptions, capability: SnapshotCapability, root: string, k: SnapshotKey, withNic: boolean): Promise<FoundSnapshot> {
  // The root is built before the save for bare VMs, on the agent's root or on an image known in
  // advance; a machine's root lives on its overlay disk, so its snapshot has none.
  const rootBuilt = !options.persistent && !options.rootShare && (!options.imageErofs || options.imageInSnapshot !== undefined);
  const staging = new SnapshotStaging(root, { imageSlot: options.imageErofs !== undefined && !rootBuilt, machineDisks: options.persistent !== undefined });
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
        await vm.agent.setupRoot(options.imageErofs ? { image: IMAGE_ROOT } : {});
        const session = await vm.exec({ argv: ['true'] });
        session.stdout.resume();
        session.stderr.resume();
        const exit = await session.exit;
        if (exit.code !== 0) throw new SnapshotError(`the warm-up exec in the saved VM failed (${exit.signal ?? `exit ${exit.code}`})`);
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
