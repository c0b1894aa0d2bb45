import { InvalidVmSpecError, type VmSpec } from '@smolvm/driver-api';
import { buildQemuArgv, kernelCmdline, optValue, opts, type QemuTarget } from '../src';

const target: QemuTarget = {
  binary: 'qemu-system-x86_64',
  machine: 'microvm',
  machineOptions: { acpi: 'off' },
  accel: 'tcg',
  cpu: 'max',
  consoleDevice: 'ttyS0',
  kernelArgs: ['quiet', 'nolapic_timer'],
};
const files = { qmpSocket: '/run/vm/qmp.sock' };

function spec(extra: Partial<VmSpec> = {}): VmSpec {
  return {
    kernel: '/k/vmlinux',
    cpus: 2,
    memoryMiB: 512,
    agent: { socketPath: '/run/vm/agent.sock' },
    consoleLog: '/run/vm/console.log',
    runDir: '/run/vm',
    ...extra,
  };
}

/** The value following each occurrence of `flag`. */
function values(argv: string[], flag: string): string[] {
  return argv.flatMap((a, i) => (a === flag ? [argv[i + 1]] : []));
}

describe('opts / optValue', () => {
  it('doubles commas so a value cannot start another option', () => {
    expect(optValue('/a,b/c')).toBe('/a,,b/c');
    expect(opts('file', { id: 'x', path: '/tmp/a,readonly=on' })).toBe('file,id=x,path=/tmp/a,,readonly=on');
  });

  it('writes booleans as on/off and drops undefined properties', () => {
    expect(opts('local', { readonly: true, other: undefined, x: false })).toBe('local,readonly=on,x=off');
  });

  it('rejects control characters (a newline cannot hide in a path)', () => {
    expect(() => optValue('/tmp/a\nb', 'disks[0].path')).toThrow(InvalidVmSpecError);
    expect(() => optValue('/tmp/a\nb', 'disks[0].path')).toThrow(/disks\[0\]\.path/);
  });
});

describe('buildQemuArgv', () => {
  it('machine, accelerator, cpu, sizes and the fixed safety flags', () => {
    const argv = buildQemuArgv(spec(), target, files);
    expect(values(argv, '-M')).toEqual(['microvm,acpi=off']);
    expect(values(argv, '-accel')).toEqual(['tcg']);
    expect(values(argv, '-cpu')).toEqual(['max']);
    expect(values(argv, '-smp')).toEqual(['2']);
    expect(values(argv, '-m')).toEqual(['512M']);
    for (const flag of ['-nodefaults', '-no-user-config', '-nographic', '-no-reboot']) expect(argv).toContain(flag);
  });

  it("the accelerator's options after its name (a bounded TCG translation cache)", () => {
    expect(values(buildQemuArgv(spec(), { ...target, accelOptions: { 'tb-size': 32 } }, files), '-accel')).toEqual([
      'tcg,tb-size=32',
    ]);
  });

  it('the seccomp sandbox when the target asks for it: no spawn, no privilege changes', () => {
    expect(buildQemuArgv(spec(), target, files)).not.toContain('-sandbox');
    const argv = buildQemuArgv(spec(), { ...target, sandbox: true }, files);
    expect(values(argv, '-sandbox')).toEqual([
      'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
    ]);
  });

  it('kernel, optional initrd, and the command line: console, driver args, then the spec args', () => {
    expect(values(buildQemuArgv(spec(), target, files), '-initrd')).toEqual([]);
    const argv = buildQemuArgv(
      spec({ initrd: '/k/initrd,1.img', cmdline: ['root=/dev/vda', 'x="a b"'] }),
      target,
      files,
    );
    expect(values(argv, '-kernel')).toEqual(['/k/vmlinux']);
    // -kernel/-initrd/-append are taken verbatim by QEMU: commas must NOT be doubled there.
    expect(values(argv, '-initrd')).toEqual(['/k/initrd,1.img']);
    expect(values(argv, '-append')).toEqual(['console=ttyS0 quiet nolapic_timer root=/dev/vda x="a b"']);
  });

  it('console log, QMP as a client of our socket, rng, and the agent port named smolvm.agent', () => {
    const argv = buildQemuArgv(spec(), target, files);
    expect(values(argv, '-chardev')).toEqual([
      'file,id=console,path=/run/vm/console.log',
      'socket,id=qmp,path=/run/vm/qmp.sock',
      'socket,id=agent,path=/run/vm/agent.sock',
    ]);
    expect(values(argv, '-serial')).toEqual(['chardev:console']);
    expect(values(argv, '-mon')).toEqual(['chardev=qmp,mode=control']);
    expect(values(argv, '-device')).toEqual([
      'virtio-rng-device',
      'virtio-serial-device',
      'virtserialport,chardev=agent,name=smolvm.agent',
      'virtio-balloon-device,free-page-reporting=on',
    ]);
    // No server=on anywhere: QEMU never listens, it connects to sockets we already listen on.
    expect(argv.join(' ')).not.toContain('server=on');
  });

  it('block devices: raw, read-only or discard-capable, serial = id, no filename protocol parsing', () => {
    const argv = buildQemuArgv(
      spec({
        disks: [
          { id: 'rootfs', path: '/img/root.erofs', readOnly: true, format: 'raw' },
          { id: 'overlay', path: '/data/a,b/overlay.raw', readOnly: false, format: 'raw' },
        ],
      }),
      target,
      files,
    );
    expect(values(argv, '-blockdev')).toEqual([
      'driver=raw,node-name=disk0,read-only=on,file.driver=file,file.filename=/img/root.erofs',
      'driver=raw,node-name=disk1,read-only=off,discard=unmap,file.driver=file,file.filename=/data/a,,b/overlay.raw',
    ]);
    expect(values(argv, '-device').slice(3, -1)).toEqual([
      'virtio-blk-device,drive=disk0,serial=rootfs',
      'virtio-blk-device,drive=disk1,serial=overlay',
    ]);
  });

  it('a disk that is a byte range of a file (a pack section in place): the raw driver gets offset and size', () => {
    const argv = buildQemuArgv(
      spec({
        disks: [
          {
            id: 'image',
            path: '/p/app.smolmachine',
            readOnly: true,
            format: 'raw',
            range: { offset: 8192, size: 4096 },
          },
        ],
      }),
      target,
      files,
    );
    expect(values(argv, '-blockdev')).toEqual([
      'driver=raw,node-name=disk0,read-only=on,offset=8192,size=4096,file.driver=file,file.filename=/p/app.smolmachine',
    ]);
  });

  it('a qcow2 disk (a snapshot fork) gets the qcow2 driver (its backing file is in its header)', () => {
    const argv = buildQemuArgv(
      spec({ disks: [{ id: 'storage', path: '/m/storage.ext4', readOnly: false, format: 'qcow2' }] }),
      target,
      files,
    );
    expect(values(argv, '-blockdev')).toEqual([
      'driver=qcow2,node-name=disk0,read-only=off,discard=unmap,file.driver=file,file.filename=/m/storage.ext4',
    ]);
  });

  it('9p shares: mapped-xattr with plain host modes, readonly=on only for read-only shares, mount tags', () => {
    const argv = buildQemuArgv(
      spec({
        shares: [
          { tag: 'work', hostPath: '/home/u/pro,ject', readOnly: false },
          { tag: 'cfg', hostPath: '/etc/cfg', readOnly: true },
        ],
      }),
      target,
      files,
    );
    expect(values(argv, '-fsdev')).toEqual([
      'local,id=fs0,path=/home/u/pro,,ject,security_model=mapped-xattr,fmode=0644,dmode=0755',
      'local,id=fs1,path=/etc/cfg,security_model=mapped-xattr,fmode=0644,dmode=0755,readonly=on',
    ]);
    expect(values(argv, '-device').slice(3, -1)).toEqual([
      'virtio-9p-device,fsdev=fs0,mount_tag=work',
      'virtio-9p-device,fsdev=fs1,mount_tag=cfg',
    ]);
  });

  it('9p share with host ownership (a container rootfs): security_model=none, so host symlinks and owners show as they are', () => {
    const argv = buildQemuArgv(
      spec({ shares: [{ tag: 'root', hostPath: '/b/rootfs', readOnly: false, hostOwnership: true }] }),
      target,
      files,
    );
    expect(values(argv, '-fsdev')).toEqual(['local,id=fs0,path=/b/rootfs,security_model=none']);
  });

  it('network: -netdev stream to the unix socket (QEMU as client) and a virtio-net NIC with the MAC', () => {
    expect(values(buildQemuArgv(spec(), target, files), '-netdev')).toEqual([]);
    const argv = buildQemuArgv(
      spec({ network: { socketPath: '/run/vm/net,1.sock', mac: '52:54:00:12:34:56' } }),
      target,
      files,
    );
    expect(values(argv, '-netdev')).toEqual(['stream,id=net0,server=off,addr.type=unix,addr.path=/run/vm/net,,1.sock']);
    expect(values(argv, '-device').slice(3, -1)).toEqual(['virtio-net-device,netdev=net0,mac=52:54:00:12:34:56']);
  });

  it('escapes commas in every socket and log path', () => {
    const argv = buildQemuArgv(
      spec({ consoleLog: '/r,1/console.log', agent: { socketPath: '/r,1/agent.sock' } }),
      target,
      { qmpSocket: '/r,1/qmp.sock' },
    );
    expect(values(argv, '-chardev')).toEqual([
      'file,id=console,path=/r,,1/console.log',
      'socket,id=qmp,path=/r,,1/qmp.sock',
      'socket,id=agent,path=/r,,1/agent.sock',
    ]);
  });

  it('rejects control characters in verbatim arguments too', () => {
    expect(() => buildQemuArgv(spec({ kernel: '/k/vm\nlinux' }), target, files)).toThrow(InvalidVmSpecError);
    expect(() => buildQemuArgv(spec({ cmdline: ['a\tb'] }), target, files)).toThrow(InvalidVmSpecError);
  });

  it('kernelCmdline refuses an argument that would split in two', () => {
    expect(() => kernelCmdline(spec({ cmdline: ['a b'] }), target)).toThrow(InvalidVmSpecError);
    expect(kernelCmdline(spec({ cmdline: ['k="a b"'] }), target)).toBe('console=ttyS0 quiet nolapic_timer k="a b"');
  });

  it('snapshots: RAM as a file backend (shared to save, private to restore), incoming deferred', () => {
    const save = buildQemuArgv(spec(), target, files, { memoryFile: '/s,1/memory', share: true, incoming: false });
    expect(values(save, '-M')).toEqual(['microvm,acpi=off,memory-backend=smolvm-ram']);
    expect(values(save, '-object')).toEqual([
      'memory-backend-file,id=smolvm-ram,size=512M,mem-path=/s,,1/memory,share=on',
    ]);
    expect(values(save, '-global')).toEqual(['migration.store-global-state=off']);
    expect(save).not.toContain('-incoming');
    const restore = buildQemuArgv(spec(), target, files, { memoryFile: '/s/memory', share: false, incoming: true });
    expect(values(restore, '-object')).toEqual([
      'memory-backend-file,id=smolvm-ram,size=512M,mem-path=/s/memory,share=off',
    ]);
    expect(values(restore, '-incoming')).toEqual(['defer']);
    // Restored paused: the taker of the VM starts it (an early start must not run the guest yet).
    expect(restore).toContain('-S');
    expect(save).not.toContain('-S');
    // The restore commands come on a second monitor, on stdin (prestart.ts restoreScript).
    expect(values(restore, '-mon')).toEqual(['chardev=restore,mode=control', 'chardev=qmp,mode=control']);
    expect(values(restore, '-chardev')).toContain('stdio,id=restore');
    expect(values(save, '-mon')).toEqual(['chardev=qmp,mode=control']);
    // Everything but the RAM sharing, -incoming and its monitor is the same command line: the
    // device set must match (monitors are not part of the migrated state).
    const restoreOnly = new Set(['defer', 'stdio,id=restore', 'chardev=restore,mode=control']);
    const strip = (argv: string[]) =>
      argv.filter(
        (a, i) =>
          a !== '-S' && !restoreOnly.has(a) && !restoreOnly.has(argv[i + 1]) && !a.startsWith('memory-backend-file'),
      );
    expect(strip(restore)).toEqual(strip(save));
    expect(values(buildQemuArgv(spec(), target, files), '-M')).toEqual(['microvm,acpi=off']);
  });

  it('elastic memory: a free-page-reporting balloon, last, only when RAM is not a snapshot file', () => {
    const cold = buildQemuArgv(
      spec({ network: { socketPath: '/run/vm/net.sock', mac: '52:54:00:12:34:56' } }),
      target,
      files,
    );
    expect(values(cold, '-device').at(-1)).toBe('virtio-balloon-device,free-page-reporting=on');
    // Discarding file-backed RAM punches holes in the file every restore of the snapshot maps.
    // Not in a ninth transport of an 8-transport machine: the VM would not start.
    const full = (n: number) =>
      spec({
        disks: Array.from({ length: n }, (_, i) => ({
          id: `d${i}`,
          path: `/d${i}`,
          readOnly: true,
          format: 'raw' as const,
        })),
      });
    const limited = { ...target, virtioTransports: 8 };
    expect(
      values(buildQemuArgv(full(5), limited, files), '-device').filter((d) => d.startsWith('virtio-balloon')),
    ).toHaveLength(1);
    expect(
      values(buildQemuArgv(full(6), limited, files), '-device').filter((d) => d.startsWith('virtio-balloon')),
    ).toHaveLength(0);
    for (const share of [true, false]) {
      const argv = buildQemuArgv(spec(), target, files, { memoryFile: '/s/memory', share, incoming: !share });
      expect(values(argv, '-device').some((d) => d.startsWith('virtio-balloon'))).toBe(false);
    }
  });
});
