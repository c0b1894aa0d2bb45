import { DriverUnavailableError, listDrivers, type VmSpec } from '@smolvm/driver-api';
import { buildQemuArgv } from '@smolvm/qemu';
import { HVF_DRIVER_NAME, createHvfDriver, virtHvfTarget } from '../src';

const spec: VmSpec = {
  kernel: '/k/Image',
  initrd: '/k/initrd',
  cmdline: ['root=/dev/vda'],
  cpus: 4,
  memoryMiB: 1024,
  disks: [{ id: 'root', path: '/img/root.erofs', readOnly: true, format: 'raw' }],
  shares: [{ tag: 'work', hostPath: '/Users/me/work', readOnly: false }],
  agent: { socketPath: '/r/agent.sock' },
  network: { socketPath: '/r/net.sock', mac: '52:54:00:00:00:01' },
  consoleLog: '/r/console.log',
  runDir: '/r',
};

function values(argv: string[], flag: string): string[] {
  return argv.flatMap((a, i) => (a === flag ? [argv[i + 1]] : []));
}

describe('hvf probe', () => {
  it('on this host (not macOS) says exactly why it is unavailable', async () => {
    if (process.platform === 'darwin') return;
    const probe = await createHvfDriver().probe();
    expect(probe).toEqual({
      available: false,
      reason: 'hvf is only available on macOS',
      remedy: 'on Linux use the kvm driver',
    });
  });

  it('start() refuses with the probe reason instead of running QEMU', async () => {
    const err = await createHvfDriver({ platform: 'linux' })
      .start(spec)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DriverUnavailableError);
    expect((err as DriverUnavailableError).message).toBe(
      "driver 'hvf' is not usable on this host: hvf is only available on macOS",
    );
  });

  it('on macOS: Intel Macs, missing Hypervisor.framework and missing QEMU each get their reason', async () => {
    const mac = { platform: 'darwin' as const, env: { PATH: '/nonexistent' } };
    expect((await createHvfDriver({ ...mac, arch: 'x64' }).probe()).reason).toMatch(
      /Apple silicon \(this Mac is x64\)/,
    );
    expect((await createHvfDriver({ ...mac, arch: 'arm64', sysctl: () => '0' }).probe()).reason).toMatch(
      /kern\.hv_support/,
    );
    const noQemu = await createHvfDriver({ ...mac, arch: 'arm64', sysctl: () => '1' }).probe();
    expect(noQemu).toMatchObject({
      available: false,
      reason: 'qemu-system-aarch64 not found',
      remedy: 'install QEMU (brew install qemu)',
    });
  });

  it('on a capable Mac: available with accelerator hvf, QEMU wiring, no snapshots, a guest CPU name', async () => {
    const probe = await createHvfDriver({
      platform: 'darwin',
      arch: 'arm64',
      sysctl: () => '1',
      qemuBinary: process.execPath,
    }).probe();
    expect(probe).toMatchObject({ available: true, accelerator: 'hvf' });
    expect(probe.features).toEqual({
      agentTransport: 'virtio-serial',
      shares: '9p',
      shareOwnership: true,
      diskLookup: 'serial',
      diskRanges: true,
      nic: 'unix-stream',
      snapshot: false,
    });
    expect(probe.guestCpu).toMatch(/^hvf-hvf-[0-9a-f]{12}$/);
  });

  it('registers itself', () => {
    expect(listDrivers().map((d) => d.name)).toContain(HVF_DRIVER_NAME);
  });
});

describe('hvf command line', () => {
  const argv = buildQemuArgv(spec, virtHvfTarget(), { qmpSocket: '/r/qmp.sock' });

  it('virt machine with GICv3, hvf, the host CPU, and the PL011 console', () => {
    expect(values(argv, '-M')).toEqual(['virt,gic-version=3']);
    expect(values(argv, '-accel')).toEqual(['hvf']);
    expect(values(argv, '-cpu')).toEqual(['host']);
    expect(values(argv, '-append')).toEqual(['console=ttyAMA0 quiet panic=-1 init_on_alloc=0 root=/dev/vda']);
    expect(argv).toContain('-no-reboot');
  });

  it('has no x86 TCG workarounds', () => {
    expect(argv.join(' ')).not.toMatch(/nolapic_timer|acpi=|reboot=t/);
  });

  it('uses the same virtio-mmio devices as on x86: disk, 9p, agent port, net, rng, balloon', () => {
    expect(values(argv, '-device')).toEqual([
      'virtio-rng-device',
      'virtio-serial-device',
      'virtserialport,chardev=agent,name=smolvm.agent',
      'virtio-blk-device,drive=disk0,serial=root',
      'virtio-9p-device,fsdev=fs0,mount_tag=work',
      'virtio-net-device,netdev=net0,mac=52:54:00:00:00:01',
      'virtio-balloon-device,free-page-reporting=on',
    ]);
  });

  describe('wires each feature it declares', () => {
    const wired = buildQemuArgv(
      {
        ...spec,
        disks: [
          {
            id: 'sect',
            path: '/p/app.smolmachine',
            readOnly: true,
            format: 'raw',
            range: { offset: 4096, size: 8192 },
          },
        ],
        shares: [{ tag: 'root', hostPath: '/c/rootfs', readOnly: false, hostOwnership: true }],
      },
      virtHvfTarget(),
      { qmpSocket: '/r/qmp.sock' },
    );
    const declared = async () =>
      (
        await createHvfDriver({
          platform: 'darwin',
          arch: 'arm64',
          sysctl: () => '1',
          qemuBinary: process.execPath,
        }).probe()
      ).features;

    it("agentTransport virtio-serial: a port named smolvm.agent, connected to the caller's socket", async () => {
      expect((await declared())?.agentTransport).toBe('virtio-serial');
      expect(values(wired, '-chardev')).toContain('socket,id=agent,path=/r/agent.sock');
      expect(values(wired, '-device')).toContain('virtserialport,chardev=agent,name=smolvm.agent');
    });

    it('diskLookup serial and diskRanges: the disk id is the serial, the range a raw window', async () => {
      expect(await declared()).toMatchObject({ diskLookup: 'serial', diskRanges: true });
      expect(values(wired, '-device')).toContain('virtio-blk-device,drive=disk0,serial=sect');
      expect(values(wired, '-blockdev')[0]).toMatch(/offset=4096,size=8192,/);
    });

    it('shares 9p with shareOwnership: the tag is the mount tag, host owners kept', async () => {
      expect(await declared()).toMatchObject({ shares: '9p', shareOwnership: true });
      expect(values(wired, '-device')).toContain('virtio-9p-device,fsdev=fs0,mount_tag=root');
      expect(values(wired, '-fsdev')[0]).toMatch(/security_model=none/);
    });

    it("nic unix-stream: frames go to the caller's unix socket", async () => {
      expect((await declared())?.nic).toBe('unix-stream');
      expect(values(wired, '-netdev')).toEqual(['stream,id=net0,server=off,addr.type=unix,addr.path=/r/net.sock']);
    });
  });

  it('uses qemu-system-aarch64', () => {
    expect(virtHvfTarget().binary).toBe('qemu-system-aarch64');
  });
});
