// One VM for one workload: the composition of kernel, agent image, driver and agent channel.
// startVm() returns only once the agent is ready and the guest root is set up; on any failure
// it has already removed everything it made (VM, sockets, files).
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { SmolvmError, smolvmDirs } from '@smolvm/common';
import { AgentClient, type AgentInfo, type ExecOptions, type ExecSession, type SetupSpec } from '@smolvm/agent-protocol';
import { ensureAgentImage } from '@smolvm/agent-image';
import { VmStartError, readLogTail, selectDriver, type BlockDeviceSpec, type VmExit, type VmHandle } from '@smolvm/driver-api';
import { locateKernel } from './kernel';
import { createRunDir, type RunDir } from './run-dir';

/** Disk serial of the per-run image disk; the agent mounts it as the overlay's lower layer. */
export const IMAGE_DISK_ID = 'smolvm-image';

export interface VolumeSpec {
  hostPath: string;
  guestPath: string;
  readOnly: boolean;
}

export interface StartVmOptions {
  cpus: number;
  memoryMiB: number;
  /** The image's erofs (from @smolvm/oci prepare); absent: a bare VM on the agent's busybox userland. */
  imageErofs?: string;
  volumes?: VolumeSpec[];
  hostname?: string;
  /** From --driver or the Smolfile; otherwise SMOLVM_DRIVER or the first usable driver. */
  driver?: { name: string; source: string };
  /** The bundled guest agent (shipped beside the CLI). */
  agentBundle: string;
  env?: NodeJS.ProcessEnv;
  /** How long boot may take before it counts as failed. TCG on a busy host is slow: default 120 s. */
  bootTimeoutMs?: number;
}

/** Milliseconds from the start of startVm(). */
export interface BootTimings {
  prepared: number;
  spawned: number;
  agentReady: number;
  setUp: number;
}

export class Vm {
  private disposing?: Promise<VmExit>;

  constructor(
    readonly agent: AgentClient,
    readonly handle: VmHandle,
    readonly timings: BootTimings,
    /** What the agent reported about itself when ready (guest uptime, agent start time...). */
    readonly agentInfo: AgentInfo,
    private readonly consoleFd: number,
  ) {}

  exec(options: ExecOptions): Promise<ExecSession> {
    return this.agent.exec(options);
  }

  /** The last lines the guest printed on its console (kernel messages, init errors). */
  consoleTail(lines = 20): string[] {
    // The log file itself is already unlinked; our descriptor still reads it.
    return readLogTail(`/proc/self/fd/${this.consoleFd}`, lines);
  }

  /**
   * Powers the guest off through the agent and waits for the VM to end, ending it harder after
   * `graceMs`. Idempotent; never rejects.
   */
  dispose(graceMs = 5_000): Promise<VmExit> {
    this.disposing ??= (async () => {
      try {
        await withTimeout(this.agent.shutdown(), graceMs);
      } catch {
        // An agent that does not answer is ended by the driver below.
      }
      const exit = await this.handle.stop({ timeoutMs: graceMs });
      this.agent.close();
      fs.closeSync(this.consoleFd);
      return exit;
    })();
    return this.disposing;
  }

  /** Ends the VM at once. */
  async kill(): Promise<VmExit> {
    const exit = await this.handle.kill();
    return this.dispose(0).then(() => exit);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]);
}

/** Accepts exactly one connection (QEMU's); anyone else who reaches the socket is dropped. */
function listenOnce(socketPath: string): Promise<{ server: net.Server; connection: Promise<net.Socket> }> {
  return new Promise((resolve, reject) => {
    let accepted = false;
    let deliver!: (s: net.Socket) => void;
    const connection = new Promise<net.Socket>((r) => (deliver = r));
    const server = net.createServer((socket) => {
      if (accepted) {
        socket.destroy();
        return;
      }
      accepted = true;
      deliver(socket);
    });
    server.once('error', reject);
    server.listen(socketPath, () => resolve({ server, connection }));
  });
}

export async function startVm(options: StartVmOptions): Promise<Vm> {
  const t0 = performance.now();
  const since = () => Math.round(performance.now() - t0);
  const env = options.env ?? process.env;
  const kernel = locateKernel(env);
  const agentImage = await ensureAgentImage({ cacheDir: smolvmDirs(env).cache, agentBundle: options.agentBundle });
  const { driver } = await selectDriver({ name: options.driver?.name, source: options.driver?.source, env });
  const prepared = since();

  const runDir: RunDir = createRunDir('vm', env);
  const agentSocket = path.join(runDir.path, 'agent.sock');
  const consoleLog = path.join(runDir.path, 'console.log');
  let server: net.Server | undefined;
  let handle: VmHandle | undefined;
  let client: AgentClient | undefined;
  let consoleFd: number | undefined;
  let agentInfo: AgentInfo = {};
  try {
    const listening = await listenOnce(agentSocket);
    server = listening.server;
    const disks: BlockDeviceSpec[] = [{ id: agentImage.diskId, path: agentImage.path, readOnly: true, format: 'raw' }];
    if (options.imageErofs) disks.push({ id: IMAGE_DISK_ID, path: options.imageErofs, readOnly: true, format: 'raw' });
    const volumes = options.volumes ?? [];
    handle = await driver.start({
      kernel,
      cmdline: agentImage.kernelArgs,
      cpus: options.cpus,
      memoryMiB: options.memoryMiB,
      disks,
      shares: volumes.map((v, i) => ({ tag: `vol${i}`, hostPath: v.hostPath, readOnly: v.readOnly })),
      agent: { socketPath: agentSocket },
      consoleLog,
      runDir: path.join(runDir.path, 'driver'),
    });
    const spawned = since();
    const vmHandle = handle;

    const bootTimeout = options.bootTimeoutMs ?? 120_000;
    let timer: NodeJS.Timeout | undefined;
    const failure = new Promise<never>((_, reject) => {
      void vmHandle.wait().then((exit) => {
        reject(new VmStartError(`the VM ended before its agent was ready (${exit.detail ?? exit.reason})`, { consoleTail: readLogTail(consoleLog), hypervisorOutput: exit.hypervisorOutput }));
      });
      timer = setTimeout(() => {
        reject(new VmStartError(`the agent was not ready after ${Math.round(bootTimeout / 1000)} s`, { consoleTail: readLogTail(consoleLog) }, { remedy: 'the host may be overloaded; try again, or give the VM fewer vCPUs' }));
      }, bootTimeout);
    });
    failure.catch(() => undefined);
    try {
      const socket = await Promise.race([listening.connection, failure]);
      client = new AgentClient(socket);
      agentInfo = await Promise.race([client.waitReady(), failure]);
    } finally {
      clearTimeout(timer);
    }
    const agentReady = since();

    // Nothing on disk needs to outlive boot: QEMU holds its connections and the console log
    // open, and we keep a descriptor to read the log. A SIGKILLed CLI then leaves no files.
    consoleFd = fs.openSync(consoleLog, 'r');
    server.close();
    server = undefined;
    runDir.remove();

    await client.setTime(Date.now());
    const setup: SetupSpec = {
      ...(options.hostname ? { hostname: options.hostname } : {}),
      ...(options.imageErofs ? { image: { device: { serial: IMAGE_DISK_ID }, fstype: 'erofs' } } : {}),
      ...(volumes.length ? { volumes: volumes.map((v, i) => ({ tag: `vol${i}`, path: v.guestPath, readOnly: v.readOnly })) } : {}),
    };
    await client.setup(setup);
    return new Vm(client, handle, { prepared, spawned, agentReady, setUp: since() }, agentInfo, consoleFd);
  } catch (err) {
    client?.close();
    if (handle) await handle.kill();
    server?.close();
    if (consoleFd !== undefined) fs.closeSync(consoleFd);
    runDir.remove();
    if (err instanceof SmolvmError) throw err;
    throw new SmolvmError(`starting the VM failed: ${(err as Error).message}`, { cause: err });
  }
}
