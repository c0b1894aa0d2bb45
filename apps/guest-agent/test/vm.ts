// Boots real VMs for the end-to-end tests: the guest kernel, the agent image as root disk, the
// agent channel on a unix socket we listen on — through driver-kvm, as `machine run` will.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { AgentClient } from '@smolvm/agent-protocol';
import { ensureAgentImage, type AgentImage, type AgentImageOptions } from '@smolvm/agent-image';
import type { BlockDeviceSpec, VmHandle, VmExit } from '@smolvm/driver-api';
import { createKvmDriver, type Accelerator } from '@smolvm/driver-kvm';

const REPO = path.resolve(__dirname, '../../..');

/** The guest kernel; a missing kernel is a failure with the remedy, never a silent skip. */
export function guestKernel(): string {
  try {
    return execFileSync(path.join(REPO, 'tools/kernel/build'), ['--print-path'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    throw new Error('the guest kernel is not built: run tools/setup (or tools/kernel/build)');
  }
}

/** A fresh bundle of the agent sources, so the test never boots a stale dist/. */
export function buildAgentBundle(outDir: string): string {
  execFileSync(path.join(REPO, 'node_modules/.bin/tsup'), ['--out-dir', outDir], {
    cwd: path.join(REPO, 'apps/guest-agent'),
    stdio: 'pipe',
  });
  return path.join(outDir, 'agent.js');
}

export async function agentImage(
  cacheDir: string,
  bundle: string,
  opts: Partial<AgentImageOptions> = {},
): Promise<AgentImage> {
  return ensureAgentImage({ cacheDir, agentBundle: bundle, ...opts });
}

export interface BootedVm {
  client: AgentClient;
  vm: VmHandle;
  /** ms from asking the driver to start QEMU to the agent's hello. */
  readyMs: number;
  spawnedAt: number;
  consoleLog: string;
  exited: Promise<VmExit>;
  dispose(): Promise<void>;
}

export interface BootOptions {
  accel: Accelerator;
  kernel: string;
  image: AgentImage;
  extraDisks?: BlockDeviceSpec[];
  shares?: Array<{ tag: string; hostPath: string; readOnly: boolean }>;
  memoryMiB?: number;
  readyTimeoutMs?: number;
  /** Boot through an initramfs instead of the image's root= arguments (measurements). */
  initrd?: string;
  cmdline?: string[];
}

export async function bootVm(o: BootOptions): Promise<BootedVm> {
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-e2e-'));
  const socketPath = path.join(runDir, 'agent.sock');
  const consoleLog = path.join(runDir, 'console.log');
  const listener = net.createServer();
  await new Promise<void>((resolve) => listener.listen(socketPath, resolve));
  const connection = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
  const driver = createKvmDriver({ accel: o.accel, quiet: true });
  const spawnedAt = performance.now();
  const vm = await driver.start({
    kernel: o.kernel,
    cmdline: o.cmdline ?? o.image.kernelArgs,
    initrd: o.initrd,
    cpus: 1,
    memoryMiB: o.memoryMiB ?? 512,
    disks: [{ id: o.image.diskId, path: o.image.path, readOnly: true, format: 'raw' }, ...(o.extraDisks ?? [])],
    shares: o.shares,
    agent: { socketPath },
    consoleLog,
    runDir: path.join(runDir, 'run'),
  });
  const exited = vm.wait();
  exited.catch(() => undefined);
  const dispose = async () => {
    await vm.kill().catch(() => undefined);
    listener.close();
    fs.rmSync(runDir, { recursive: true, force: true });
  };
  try {
    const socket = await withTimeout(connection, 30_000, 'QEMU never connected to the agent socket');
    const client = new AgentClient(socket);
    const timeout = o.readyTimeoutMs ?? 120_000;
    const ended = exited.then((e) => {
      throw new Error(
        `the VM ended before the agent was ready (${JSON.stringify(e)}); console:\n${consoleTail(consoleLog)}`,
      );
    });
    await Promise.race([
      withTimeout(
        client.waitReady(),
        timeout,
        `no agent hello within ${timeout} ms; console:\n${consoleTail(consoleLog)}`,
      ),
      ended,
    ]);
    return { client, vm, readyMs: performance.now() - spawnedAt, spawnedAt, consoleLog, exited, dispose };
  } catch (err) {
    if (err instanceof Error && !err.message.includes('console:'))
      err.message += `; console:\n${consoleTail(consoleLog)}`;
    await dispose();
    throw err;
  }
}

export function consoleTail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no console log)';
  }
}

export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms))),
  ]);
}
