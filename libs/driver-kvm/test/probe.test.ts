import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { listDrivers } from '@smolvm/driver-api';
import { KVM_DRIVER_NAME, createKvmDriver, probeKvmDevice, probeKvmDeviceSync } from '../src';

describe('probeKvmDevice (real ioctls through koffi)', () => {
  it('on this host: usable with API 12, or a precise reason with a remedy', async () => {
    const status = await probeKvmDevice();
    if (status.usable) {
      expect(status.apiVersion).toBe(12);
      expect(status.maxVcpus).toBeGreaterThan(0);
    } else {
      expect(status.reason).toMatch(/\/dev\/kvm|KVM/);
      expect(status.remedy).toBeTruthy();
    }
    // Whatever the answer, it must match what the device node says.
    if (!fs.existsSync('/dev/kvm')) expect(status.reason).toBe('no /dev/kvm: this host has no KVM');
  });

  it('a missing device: ENOENT, told as "no DEVICE" with how to enable KVM', async () => {
    const status = await probeKvmDevice('/nonexistent/kvm');
    expect(status).toMatchObject({ usable: false, reason: 'no /nonexistent/kvm: this host has no KVM' });
    expect(status.remedy).toMatch(/enable hardware virtualization.*modprobe kvm_intel or kvm_amd/);
  });

  it('a character device that is not KVM: the ioctl fails and says so', async () => {
    const status = await probeKvmDevice('/dev/null');
    expect(status).toMatchObject({
      usable: false,
      reason: '/dev/null is not a KVM device (KVM_GET_API_VERSION: ENOTTY)',
    });
  });

  it('a regular file: not a character device', async () => {
    const status = await probeKvmDevice(__filename);
    expect(status.usable).toBe(false);
    expect(status.reason).toBe(`${__filename} is not a character device`);
  });
});

describe('software KVM (no VT-x/AMD-V under /dev/kvm, e.g. PVM) is not usable KVM', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-kvm-probe-'));
  const cpuinfo = (flags: string) => {
    const file = path.join(dir, `cpuinfo-${flags.replace(/\W/g, '_')}`);
    fs.writeFileSync(file, `processor\t: 0\nflags\t\t: ${flags}\n\n`);
    return file;
  };
  const withPvm = path.join(dir, 'sys-module-pvm');
  fs.mkdirSync(path.join(withPvm, 'kvm_pvm'), { recursive: true });
  const withoutPvm = path.join(dir, 'sys-module');
  fs.mkdirSync(withoutPvm);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  // These need a /dev/kvm whose ioctls answer; the CPU flags are what is injected.
  const ioctlsAnswer = probeKvmDeviceSync('/dev/kvm', { cpuinfo: cpuinfo('fpu vmx') }).usable;
  const itWithKvm = ioctlsAnswer ? it : it.skip;

  itWithKvm('with vmx or svm in the CPU flags: usable', () => {
    expect(probeKvmDeviceSync('/dev/kvm', { cpuinfo: cpuinfo('fpu svm sse') }).usable).toBe(true);
  });

  itWithKvm('without them: not usable, naming PVM when kvm_pvm is loaded, and told without an ioctl', () => {
    const status = probeKvmDeviceSync('/dev/kvm', { cpuinfo: cpuinfo('fpu sse hypervisor'), sysModule: withPvm });
    expect(status).toEqual({
      usable: false,
      reason: '/dev/kvm is PVM (kvm_pvm) without VT-x/AMD-V underneath, which cannot boot standard guest kernels',
      remedy: expect.stringMatching(/hardware virtualization/),
    });
    expect(probeKvmDeviceSync('/dev/kvm', { cpuinfo: cpuinfo('fpu'), sysModule: withoutPvm }).reason).toBe(
      '/dev/kvm is a software KVM without VT-x/AMD-V underneath, which cannot boot standard guest kernels',
    );
  });

  it('on this host the verdict agrees with the CPU flags', async () => {
    const status = await probeKvmDevice();
    const flags = /^flags\s*:(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
    if (!/\b(vmx|svm)\b/.test(flags)) expect(status.usable).toBe(false);
  });
});

describe('createKvmDriver().probe()', () => {
  const kvmHere = fs.existsSync('/dev/kvm');

  it('auto: kvm when usable, else tcg with the reason as a warning', async () => {
    const kvm = await probeKvmDevice();
    const probe = await createKvmDriver({ env: { PATH: process.env.PATH } }).probe();
    expect(probe.available).toBe(true);
    if (kvm.usable) {
      expect(probe).toMatchObject({
        accelerator: 'kvm',
        features: { snapshot: true },
        guestCpu: expect.stringMatching(/^kvm-kvm-/),
      });
      expect(probe.reason).toBeUndefined();
    } else {
      expect(probe.accelerator).toBe('tcg');
      expect(probe.reason).toContain(kvm.reason);
    }
    if (!kvmHere) expect(probe.accelerator).toBe('tcg');
  });

  it('auto without KVM (device injected): available through TCG, with reason and remedy', async () => {
    const probe = await createKvmDriver({ kvmDevice: '/nonexistent/kvm', env: { PATH: process.env.PATH } }).probe();
    expect(probe).toMatchObject({
      available: true,
      accelerator: 'tcg',
      guestCpu: expect.stringMatching(/^kvm-tcg-[0-9a-f]{12}$/),
    });
    expect(probe.features).toEqual({
      agentTransport: 'virtio-serial',
      shares: '9p',
      shareOwnership: true,
      diskLookup: 'serial',
      diskRanges: true,
      nic: 'unix-stream',
      snapshot: true,
    });
    expect(probe.reason).toBe(
      'KVM is not usable (no /nonexistent/kvm: this host has no KVM); VMs run under TCG software emulation, several times slower',
    );
    expect(probe.remedy).toMatch(/modprobe/);
  });

  it('SMOLVM_ACCEL=tcg forces TCG without a warning, even where KVM works', async () => {
    const probe = await createKvmDriver({ env: { PATH: process.env.PATH, SMOLVM_ACCEL: 'tcg' } }).probe();
    expect(probe).toMatchObject({ available: true, accelerator: 'tcg' });
    expect(probe.reason).toBeUndefined();
  });

  it('SMOLVM_ACCEL=kvm without KVM: unavailable, with the KVM reason', async () => {
    const probe = await createKvmDriver({
      kvmDevice: '/dev/null',
      env: { PATH: process.env.PATH, SMOLVM_ACCEL: 'kvm' },
    }).probe();
    expect(probe).toMatchObject({
      available: false,
      reason: 'SMOLVM_ACCEL=kvm but /dev/null is not a KVM device (KVM_GET_API_VERSION: ENOTTY)',
    });
  });

  it('a bad SMOLVM_ACCEL value is reported, not ignored', async () => {
    const probe = await createKvmDriver({ env: { PATH: process.env.PATH, SMOLVM_ACCEL: 'hvf' } }).probe();
    expect(probe).toMatchObject({ available: false, reason: "SMOLVM_ACCEL='hvf' is not kvm, tcg or auto" });
  });

  it('no QEMU: unavailable, remedy tools/setup', async () => {
    const probe = await createKvmDriver({
      qemuBinary: 'qemu-system-nonexistent',
      env: { PATH: process.env.PATH },
    }).probe();
    expect(probe).toMatchObject({ available: false, reason: 'qemu-system-nonexistent not found' });
    expect(probe.remedy).toMatch(/tools\/setup/);
  });
});

describe('registration', () => {
  it('importing the lib registers the kvm driver', () => {
    expect(listDrivers().map((d) => d.name)).toContain(KVM_DRIVER_NAME);
  });
});
