// How driver-kvm VMs behave in QEMU run states outside the conformance contract.
import fs from 'node:fs';
import path from 'node:path';
import { LineAgent, prepareConformanceFixtures, type ConformanceFixtures, type VmSpec } from '@smolvm/driver-api';
import { launchQemu } from '@smolvm/qemu';
import { createKvmDriver, microvmTarget, probeKvmDeviceSync } from '../src';

let fx: ConformanceFixtures;
beforeAll(() => {
  fx = prepareConformanceFixtures();
});
afterAll(() => {
  if (fx) fs.rmSync(fx.workDir, { recursive: true, force: true });
});

async function specFor(name: string): Promise<{ spec: VmSpec; agent: LineAgent }> {
  const dir = path.join(fx.workDir, name);
  fs.mkdirSync(dir);
  const agent = await LineAgent.listen(path.join(dir, 'agent.sock'));
  return {
    agent,
    spec: { kernel: fx.kernel, initrd: fx.initrd, cpus: 1, memoryMiB: 128, agent: { socketPath: agent.socketPath }, consoleLog: path.join(dir, 'console.log'), runDir: path.join(dir, 'run') },
  };
}

it('a VM paused and resumed over QMP keeps running (only dead states end it)', async () => {
  const { spec, agent } = await specFor('pause');
  const vm = await createKvmDriver({ accel: 'tcg' }).start(spec);
  try {
    await agent.ready(60_000, vm.wait());
    await vm.qmp?.('stop');
    expect(await vm.qmp?.('query-status')).toMatchObject({ status: 'paused' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await vm.qmp?.('cont');
    expect(await agent.run('echo still here')).toEqual({ output: ['still here'], code: 0 });
  } finally {
    expect((await vm.stop()).reason).toBe('stopped');
    await agent.close();
  }
}, 90_000);

// Only where /dev/kvm answers but is software KVM (PVM): what happens if one boots there anyway.
const kvm = probeKvmDeviceSync();
const softwareKvm = !kvm.usable && /without VT-x\/AMD-V/.test(kvm.reason ?? '');

(softwareKvm ? it : it.skip)('software KVM (PVM): forcing KVM ends as crashed/internal-error instead of hanging paused', async () => {
  const { spec, agent } = await specFor('pvm');
  const vm = await launchQemu(spec, microvmTarget('kvm'));
  try {
    const exit = await Promise.race([vm.wait(), new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 150_000).unref())]);
    expect(exit).toMatchObject({ reason: 'crashed', detail: 'internal-error' });
    expect(exit?.hypervisorOutput?.join('\n')).toMatch(/KVM internal error/);
  } finally {
    await vm.kill();
    await agent.close();
  }
}, 180_000);
