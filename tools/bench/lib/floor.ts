// The floor every start is compared with: QEMU + the guest kernel + a trivial init that prints
// and ends the VM (no agent, no Node), booted through the same driver smolvm uses.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { cpioNewc } from '@smolvm/driver-api/conformance';
import { createKvmDriver } from '@smolvm/driver-kvm';

const FLOOR_INIT = '#!/bin/busybox sh\n/bin/busybox echo hello\n/bin/busybox reboot -f\n';

export interface Floor {
  /** Milliseconds from start() to the VM's end, for one boot in a fresh directory under the work dir. */
  once(): Promise<number>;
  accelerator?: string;
  reason?: string;
}

/** Writes the floor's initrd into `work` and probes the driver. */
export async function prepareFloor(kernel: string, work: string): Promise<Floor> {
  const initrd = path.join(work, 'floor.cpio');
  fs.writeFileSync(
    initrd,
    cpioNewc([
      ...['bin', 'dev', 'proc', 'sys'].map((d) => ({ kind: 'dir' as const, path: d })),
      { kind: 'chardev', path: 'dev/console', major: 5, minor: 1 },
      { kind: 'file', path: 'bin/busybox', data: fs.readFileSync('/bin/busybox'), mode: 0o755 },
      { kind: 'file', path: 'init', data: FLOOR_INIT, mode: 0o755 },
    ]),
  );
  const driver = createKvmDriver({ quiet: true });
  const probe = await driver.probe();
  let n = 0;
  const once = async (): Promise<number> => {
    const dir = path.join(work, `floor-${n++}`);
    fs.mkdirSync(dir);
    // The driver wires the agent port to a socket we listen on; the trivial init never uses it.
    const server = net.createServer((s) => s.resume());
    await new Promise<void>((r) => server.listen(path.join(dir, 'agent.sock'), r));
    const t0 = performance.now();
    const vm = await driver.start({
      kernel,
      initrd,
      cpus: 1,
      memoryMiB: 256,
      agent: { socketPath: path.join(dir, 'agent.sock') },
      consoleLog: path.join(dir, 'console.log'),
      runDir: path.join(dir, 'run'),
    });
    const exit = await vm.wait();
    const ms = performance.now() - t0;
    server.close();
    if (exit.reason !== 'guest' || !fs.readFileSync(path.join(dir, 'console.log'), 'utf8').includes('hello')) {
      throw new Error(`floor VM did not print and end cleanly: ${JSON.stringify(exit)}`);
    }
    fs.rmSync(dir, { recursive: true, force: true });
    return ms;
  };
  return {
    once,
    ...(probe.accelerator ? { accelerator: probe.accelerator } : {}),
    ...(probe.reason ? { reason: probe.reason } : {}),
  };
}
