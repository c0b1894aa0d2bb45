// launchQemu's failure paths: each must leave no process and no file of ours. (Booting is covered
// by the driver conformance suite in driver-kvm, which needs the guest kernel.)
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { InvalidVmSpecError, VmStartError, type VmSpec } from '@smolvm/driver-api';
import { launchQemu, type QemuTarget } from '../src';
import { tempDir } from './helpers';

const target: QemuTarget = {
  binary: 'qemu-system-x86_64',
  machine: 'microvm',
  machineOptions: { acpi: 'off' },
  accel: 'tcg',
  cpu: 'max',
  consoleDevice: 'ttyS0',
  kernelArgs: [],
};

let dir: string;
let agent: net.Server;
let spec: VmSpec;

beforeEach(async () => {
  dir = tempDir();
  fs.writeFileSync(path.join(dir, 'not-a-kernel'), 'this is not a kernel\n');
  agent = net.createServer();
  await new Promise<void>((resolve) => agent.listen(path.join(dir, 'agent.sock'), resolve));
  spec = {
    kernel: path.join(dir, 'not-a-kernel'),
    cpus: 1,
    memoryMiB: 64,
    agent: { socketPath: path.join(dir, 'agent.sock') },
    consoleLog: path.join(dir, 'console.log'),
    runDir: path.join(dir, 'run'),
  };
});

afterEach(() => {
  agent.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function qemuProcessesFor(runDir: string): number[] {
  return fs
    .readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(runDir);
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe('launchQemu failures', () => {
  it('QEMU refusing the kernel: VmStartError quoting QEMU, nothing left behind', async () => {
    fs.writeFileSync(spec.consoleLog, 'stale line from an earlier run\n');
    const err = await launchQemu(spec, target).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmStartError);
    const e = err as VmStartError;
    expect(e.message).toMatch(/^VM failed to start: QEMU exited with status 1: invalid kernel header$/);
    expect(e.consoleTail).toEqual([]); // the stale log was truncated, not quoted
    expect(e.remedy).toBe(`see the console log ${spec.consoleLog}`);
    expect(fs.readdirSync(spec.runDir)).toEqual([]);
    expect(qemuProcessesFor(spec.runDir)).toEqual([]);
  }, 30_000);

  it('a stale QMP socket from a killed run is replaced, not an error', async () => {
    fs.mkdirSync(spec.runDir);
    const stale = net.createServer();
    await new Promise<void>((resolve) => stale.listen(path.join(spec.runDir, 'qmp.sock'), resolve));
    stale.close(); // unlink happens on close; recreate a dead socket file by hand
    fs.writeFileSync(path.join(spec.runDir, 'qmp.sock'), '');
    const err = await launchQemu(spec, target).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/invalid kernel header/);
    expect(fs.readdirSync(spec.runDir)).toEqual([]);
  }, 30_000);

  it('QEMU binary missing: VmStartError with the setup remedy', async () => {
    const err = await launchQemu(spec, { ...target, binary: 'qemu-system-nonexistent' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmStartError);
    expect((err as VmStartError).message).toBe('VM failed to start: qemu-system-nonexistent not found');
    expect((err as VmStartError).remedy).toMatch(/tools\/setup/);
  });

  it('a QEMU option QEMU rejects: its complaint, without the program-name prefix', async () => {
    const err = await launchQemu(spec, { ...target, machineOptions: { acpi: 'off', bogus: 'on' } }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(VmStartError);
    expect((err as VmStartError).message).toBe(
      "VM failed to start: QEMU exited with status 1: Property 'microvm-machine.bogus' not found",
    );
  }, 30_000);

  it('a runDir too long for a unix socket is a spec error before anything starts', async () => {
    const err = await launchQemu({ ...spec, runDir: path.join(dir, 'r'.repeat(120)) }, target).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidVmSpecError);
    expect((err as InvalidVmSpecError).field).toBe('runDir');
  });

  it('an invalid spec is refused before anything starts', async () => {
    await expect(launchQemu({ ...spec, memoryMiB: 0 }, target)).rejects.toBeInstanceOf(InvalidVmSpecError);
    expect(fs.existsSync(spec.runDir)).toBe(false);
  });
});
