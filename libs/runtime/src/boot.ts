// Boots one VM from a spec and waits for its agent: the run directory, the agent and network
// sockets (listening before the driver starts), the driver's start (a boot, a saveable boot or a
// restore), readiness raced against the VM's end. On failure nothing it made is left.
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { SmolvmError } from '@smolvm/common';
import { AgentClient, type AgentInfo } from '@smolvm/agent-protocol';
import { RUNTIME_DISK_ID, type AgentImage } from '@smolvm/agent-image';
import {
  VmStartError,
  readLogTail,
  type BlockDeviceSpec,
  type Driver,
  type DriverFeatures,
  type NetworkEndpointSpec,
  type VmHandle,
  type VmSpec,
} from '@smolvm/driver-api';
import type { Gateway } from '@smolvm/netpolicy';
import type { VolumeMount } from '@smolvm/config';
import {
  IMAGE_DISK_ID,
  OVERLAY_DISK_ID,
  ROOT_SHARE_TAG,
  STORAGE_DISK_ID,
  type DiskRange,
  type PersistentDisks,
} from './layout';
import type { PreparedNetwork } from './network';
import { EARLY_SETUP_OPS, agentSocketPath, listenOnce, type PrestartedParts } from './prestart';
import { createRunDir, type RunDir } from './run-dir';
import { Vm } from './vm';

export interface BootOptions {
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
  /** What the driver declared (probe): how the guest finds its disks. */
  features: DriverFeatures;
  cpus: number;
  memoryMiB: number;
  imageErofs?: string;
  /** See StartVmOptions.imageInSnapshot. */
  imageInSnapshot?: string;
  imageRange?: DiskRange;
  agentRange?: DiskRange;
  /** The executable the agent image's node is read from (AgentImage.runtimeDiskId): attached last, read-only. */
  runtime?: { path: string; range?: DiskRange; sha256: string };
  rootShare?: string;
  volumes: VolumeMount[];
  persistent?: PersistentDisks;
  env: NodeJS.ProcessEnv;
  bootTimeoutMs: number;
}

/** The VM ran, but its agent did not answer in time (see warmStart: the snapshot is not to blame). */
export class AgentTimeoutError extends VmStartError {}

/** Boots a VM and waits for its agent; on failure nothing it made is left. */
export async function boot(
  options: BootOptions,
  t0: number,
  network?: PreparedNetwork,
  prestarted?: PrestartedParts,
): Promise<Vm> {
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
    const disks: BlockDeviceSpec[] = [
      {
        id: agentImage.diskId,
        path: agentImage.path,
        readOnly: true,
        format: 'raw',
        ...(options.agentRange ? { range: options.agentRange } : {}),
      },
    ];
    if (options.imageErofs)
      disks.push({
        id: IMAGE_DISK_ID,
        path: options.imageErofs,
        readOnly: true,
        format: 'raw',
        ...(options.imageRange ? { range: options.imageRange } : {}),
      });
    else if (options.imageSlot)
      disks.push({ id: IMAGE_DISK_ID, path: options.imageSlot, readOnly: true, format: 'raw' });
    if (options.persistent) {
      const format = options.persistent.format ?? 'raw';
      disks.push({ id: OVERLAY_DISK_ID, path: options.persistent.overlayDisk, readOnly: false, format });
      disks.push({ id: STORAGE_DISK_ID, path: options.persistent.storageDisk, readOnly: false, format });
    }
    // Last: the guest finds it by serial, and disks found by order keep their places.
    if (options.runtime)
      disks.push({
        id: RUNTIME_DISK_ID,
        path: options.runtime.path,
        readOnly: true,
        format: 'raw',
        ...(options.runtime.range ? { range: options.runtime.range } : {}),
      });
    const start = options.start ?? ((spec: VmSpec) => options.driver.start(spec));
    handle = await start({
      kernel: options.kernel,
      cmdline: agentImage.kernelArgs,
      cpus: options.cpus,
      memoryMiB: options.memoryMiB,
      disks,
      shares: [
        ...volumes.map((v, i) => ({ tag: `vol${i}`, hostPath: v.hostPath, readOnly: v.readOnly })),
        ...(options.rootShare
          ? [{ tag: ROOT_SHARE_TAG, hostPath: options.rootShare, readOnly: false, hostOwnership: true }]
          : []),
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
        reject(
          new VmStartError(`the VM ended before its agent was ready (${exit.detail ?? exit.reason})`, {
            consoleTail: readLogTail(consoleLog),
            hypervisorOutput: exit.hypervisorOutput,
          }),
        );
      });
      timer = setTimeout(() => {
        reject(
          new AgentTimeoutError(
            `the agent was not ready after ${Math.round(options.bootTimeoutMs / 1000)} s`,
            { consoleTail: readLogTail(consoleLog) },
            { remedy: 'the host may be overloaded; try again, or give the VM fewer vCPUs' },
          ),
        );
      }, options.bootTimeoutMs);
    });
    failure.catch(() => undefined);
    let agentInfo: AgentInfo;
    try {
      const socket = await Promise.race([listening.connection, failure]);
      // An early start that set the guest up sent the hello and those requests already.
      client = new AgentClient(socket, prestarted?.setup ? { preamble: EARLY_SETUP_OPS } : {});
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
    const vm = new Vm(
      client,
      handle,
      { prepared: 0, spawned, agentReady, setUp: agentReady },
      agentInfo,
      consoleFd,
      options.restored ?? false,
    );
    vm.flushOnStop = volumes.length > 0 || options.persistent !== undefined || options.rootShare !== undefined;
    if (recipe !== undefined) vm.restoreRecipe = { v: 1, driver: options.driver.name, restore: recipe };
    if (prestarted?.setup && client.preambleDone)
      vm.earlySetup = { setup: prestarted.setup, done: client.preambleDone };
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
