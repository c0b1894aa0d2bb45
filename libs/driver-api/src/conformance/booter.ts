// Boots one conformance VM: its own directory, a listening agent socket, a spec, readiness.
import fs from 'node:fs';
import path from 'node:path';
import type { Driver, VmHandle } from '../driver';
import { readLogTail } from '../log-tail';
import type { VmSpec } from '../spec';
import type { ConformanceFixtures } from './fixtures';
import { LineAgent } from './line-agent';

export interface BootedVm {
  spec: VmSpec;
  handle: VmHandle;
  agent: LineAgent;
  dir: string;
  /** spawn -> READY, informational. */
  readyMs: number;
}

export interface BootRequest {
  driver: Driver;
  fixtures: ConformanceFixtures;
  name: string;
  timeoutMs: number;
  spec?: Partial<VmSpec>;
}

export function vmDir(fixtures: ConformanceFixtures, name: string): string {
  const dir = path.join(fixtures.workDir, name);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export async function prepareVm(req: BootRequest): Promise<{ spec: VmSpec; agent: LineAgent; dir: string }> {
  const dir = vmDir(req.fixtures, req.name);
  const agent = await LineAgent.listen(path.join(dir, 'agent.sock'));
  const spec: VmSpec = {
    kernel: req.fixtures.kernel,
    initrd: req.fixtures.initrd,
    cpus: 1,
    memoryMiB: 128,
    agent: { socketPath: agent.socketPath },
    consoleLog: path.join(dir, 'console.log'),
    runDir: path.join(dir, 'run'),
    ...req.spec,
  };
  return { spec, agent, dir };
}

export async function bootVm(req: BootRequest): Promise<BootedVm> {
  const { spec, agent, dir } = await prepareVm(req);
  const started = performance.now();
  let handle: VmHandle;
  try {
    handle = await req.driver.start(spec);
  } catch (err) {
    await agent.close();
    throw err;
  }
  try {
    await agent.ready(req.timeoutMs, handle.wait());
  } catch (err) {
    await handle.kill();
    await agent.close();
    const tail = readLogTail(spec.consoleLog, 30).join('\n  ');
    throw new Error(`${(err as Error).message}; console log ${spec.consoleLog}:\n  ${tail}`);
  }
  return { spec, handle, agent, dir, readyMs: performance.now() - started };
}

/** Pids of live processes whose command line mentions `needle` (Linux /proc; [] elsewhere). */
export function processesMentioning(needle: string): number[] {
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  const found: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(needle)) found.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return found;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
