// How driver-kvm VMs behave in QEMU run states outside the conformance contract, and what forcing
// KVM where it does not work does. Hosts fail in different ways there (PVM: QEMU aborts at launch
// on one host, stops with "KVM internal error" after seconds on another), so the property is tested
// against stand-in QEMUs that fail each way, and against the real QEMU where /dev/kvm is software KVM.
import fs from 'node:fs';
import path from 'node:path';
import { VmStartError, type VmExit, type VmSpec } from '@smolvm/driver-api';
import {
  LineAgent,
  prepareConformanceFixtures,
  processesMentioning,
  type ConformanceFixtures,
} from '@smolvm/driver-api/conformance';
import { QemuVm, launchQemu } from '@smolvm/qemu';
import { createKvmDriver, microvmTarget, probeKvmDeviceSync } from '../src';

let fx: ConformanceFixtures;
beforeAll(() => {
  fx = prepareConformanceFixtures();
});
afterAll(() => {
  if (fx) fs.rmSync(fx.workDir, { recursive: true, force: true });
});

/** A spec with a listening agent; `use` runs with it, and the agent is closed whatever happens. */
async function withSpec<T>(name: string, use: (spec: VmSpec, agent: LineAgent) => Promise<T>): Promise<T> {
  const dir = path.join(fx.workDir, name);
  fs.mkdirSync(dir);
  const agent = await LineAgent.listen(path.join(dir, 'agent.sock'));
  try {
    return await use(
      {
        kernel: fx.kernel,
        initrd: fx.initrd,
        cpus: 1,
        memoryMiB: 128,
        agent: { socketPath: agent.socketPath },
        consoleLog: path.join(dir, 'console.log'),
        runDir: path.join(dir, 'run'),
      },
      agent,
    );
  } finally {
    await agent.close();
  }
}

/** Sockets left in a VM's run dir (QMP, ...): none may outlive QEMU. */
function socketsIn(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((name) => fs.lstatSync(path.join(dir, name)).isSocket());
}

/** Writes an executable stand-in for qemu-system-x86_64 and returns its path. */
function standInQemu(name: string, script: string): string {
  const file = path.join(fx.workDir, `${name}-qemu-system-x86_64`);
  fs.writeFileSync(file, script, { mode: 0o755 });
  return file;
}

// QEMU on some PVM hosts: an assertion in KVM's MSR setup aborts it before the guest runs.
const ABORTS_AT_LAUNCH = `#!/bin/sh
echo "qemu-system-x86_64: ../accel/kvm/kvm-all.c:1780: kvm_buf_set_msrs: Assertion \\\`ret == cpu->kvm_msr_buf->nmsrs' failed." >&2
kill -ABRT $$
`;

// QEMU on other PVM hosts: it starts, runs a while, then KVM reports an emulation failure and
// QEMU pauses the VM in run state internal-error, waiting forever.
const INTERNAL_ERROR_LATER = `#!${process.execPath}
const net = require('node:net');
const arg = process.argv.find((a) => a.startsWith('socket,id=qmp,'));
const socketPath = /path=([^,]+)/.exec(arg)[1];
let status = 'running';
const conn = net.connect(socketPath, () => {
  const send = (msg) => conn.write(JSON.stringify(msg) + '\\n');
  send({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: 'stand-in' }, capabilities: [] } });
  let buffered = '';
  conn.on('data', (chunk) => {
    buffered += chunk;
    let nl;
    while ((nl = buffered.indexOf('\\n')) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (!line) continue;
      const cmd = JSON.parse(line);
      if (cmd.execute === 'query-status') send({ return: { status, running: status === 'running' }, id: cmd.id });
      else if (cmd.execute === 'quit') { send({ return: {}, id: cmd.id }); send({ event: 'SHUTDOWN', data: { guest: false, reason: 'host-qmp-quit' } }); conn.end(); setTimeout(() => process.exit(0), 50); }
      else send({ return: {}, id: cmd.id });
    }
  });
  setTimeout(() => {
    process.stderr.write('KVM internal error. Suberror: 1\\nemulation failure\\n');
    status = 'internal-error';
    send({ event: 'STOP' });
  }, 500);
});
conn.on('error', () => process.exit(1));
`;

/**
 * Forces KVM with `binary` and returns how it ended: start-up refused (VmStartError) or the VM
 * ended by itself. Either must come within `boundMs`, and leave no process and no socket behind.
 */
async function forceKvm(
  name: string,
  binary: string,
  boundMs: number,
): Promise<{ error?: VmStartError; exit?: VmExit }> {
  return withSpec(name, async (spec) => {
    let vm: QemuVm | undefined;
    let outcome: { error?: VmStartError; exit?: VmExit };
    try {
      vm = await launchQemu(spec, microvmTarget('kvm', binary));
      const started = vm;
      const exit = await Promise.race([
        started.wait(),
        new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), boundMs).unref()),
      ]);
      if (!exit) throw new Error(`forcing KVM with ${binary} did not end within ${boundMs} ms (the VM hangs)`);
      outcome = { exit };
    } catch (err) {
      if (!(err instanceof VmStartError)) throw err;
      outcome = { error: err };
    } finally {
      await vm?.kill();
    }
    expect(processesMentioning(spec.runDir)).toEqual([]);
    expect(socketsIn(spec.runDir)).toEqual([]);
    return outcome;
  });
}

it('a VM paused and resumed over QMP keeps running (only dead states end it)', async () => {
  await withSpec('pause', async (spec, agent) => {
    const vm = await createKvmDriver({ accel: 'tcg' }).start(spec);
    // QMP is QEMU's own: the driver's handle is a QemuVm, which keeps it.
    if (!(vm instanceof QemuVm)) throw new Error('the kvm driver did not start a QemuVm');
    const qmp = (command: string) => vm.qmp(command);
    try {
      await agent.ready(60_000, vm.wait());
      await qmp('stop');
      expect(await qmp('query-status')).toMatchObject({ status: 'paused' });
      await new Promise((resolve) => setTimeout(resolve, 300));
      await qmp('cont');
      expect(await agent.run('echo still here')).toEqual({ output: ['still here'], code: 0 });
    } finally {
      expect((await vm.stop()).reason).toBe('stopped');
    }
  });
}, 90_000);

it('forcing KVM where QEMU aborts at launch: a start error that names KVM, nothing left behind', async () => {
  const { error, exit } = await forceKvm('abort', standInQemu('abort', ABORTS_AT_LAUNCH), 30_000);
  expect(exit).toBeUndefined();
  expect(error?.message).toMatch(/SIGABRT/);
  expect(error?.message).toMatch(/KVM/);
  expect(error?.remedy).toMatch(/SMOLVM_ACCEL=tcg/);
}, 60_000);

it('forcing KVM where it fails after start-up: the VM ends as crashed/internal-error, nothing left behind', async () => {
  const { error, exit } = await forceKvm('later', standInQemu('later', INTERNAL_ERROR_LATER), 30_000);
  expect(error).toBeUndefined();
  expect(exit).toMatchObject({ reason: 'crashed', detail: 'internal-error' });
  expect(exit?.hypervisorOutput?.join('\n')).toMatch(/KVM internal error/);
}, 60_000);

// Only where /dev/kvm answers but is software KVM (PVM): the real QEMU, whichever way it fails here.
const kvm = probeKvmDeviceSync();
const softwareKvm = !kvm.usable && /without VT-x\/AMD-V/.test(kvm.reason ?? '');

(softwareKvm ? it : it.skip)(
  'software KVM (PVM): forcing KVM with the real QEMU ends with a KVM error, never hangs',
  async () => {
    const { error, exit } = await forceKvm('pvm', 'qemu-system-x86_64', 150_000);
    if (error) {
      expect(error.message).toMatch(/KVM/);
    } else {
      expect(exit).toMatchObject({ reason: 'crashed' });
      expect(exit?.hypervisorOutput?.join('\n')).toMatch(/KVM/);
    }
  },
  180_000,
);
