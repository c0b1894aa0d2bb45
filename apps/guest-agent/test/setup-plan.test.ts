import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  NINEP_OPTIONS,
  findInterface,
  planExecRoot,
  planRootOnly,
  planRun,
  planSetup,
  resolveUser,
  type SetupStep,
} from '../src';

const dev = (ref: { serial: string } | { path: string }) => ('path' in ref ? ref.path : `/dev/by-serial/${ref.serial}`);
const mounts = (steps: SetupStep[]) =>
  steps
    .filter((s) => s.op === 'mount')
    .map((s) => s.op === 'mount' && `${s.fstype} ${s.source} ${s.target} ${s.flags} ${s.data ?? ''}`.trim());

describe('guest root plan', () => {
  it('image VM: erofs lower, tmpfs upper, API filesystems, volumes, then chroot', () => {
    const steps = planSetup(
      {
        hostname: 'web',
        image: { device: { serial: 'smolvm-image' } },
        upperSizeMiB: 512,
        volumes: [
          { tag: 'vol0', path: '/src', readOnly: true },
          { tag: 'vol1', path: '/out' },
        ],
      },
      dev,
      '/run/s',
    );
    expect(mounts(steps)).toEqual([
      'erofs /dev/by-serial/smolvm-image /run/s/lower 1',
      'tmpfs tmpfs /run/s/rw 2 mode=0755,size=512m',
      'overlay overlay /run/s/root 0 lowerdir=/run/s/lower,upperdir=/run/s/rw/upper,workdir=/run/s/rw/work',
      'proc proc /run/s/root/proc 14',
      'sysfs sysfs /run/s/root/sys 14',
      'devtmpfs devtmpfs /run/s/root/dev 2 mode=0755',
      'devpts devpts /run/s/root/dev/pts 10 newinstance,ptmxmode=0666,mode=0620,gid=5',
      'tmpfs shm /run/s/root/dev/shm 6 mode=1777',
      'tmpfs tmpfs /run/s/root/tmp 6 mode=1777',
      `9p vol0 /run/s/root/src 7 ${NINEP_OPTIONS}`,
      `9p vol1 /run/s/root/out 6 ${NINEP_OPTIONS}`,
    ]);
    expect(steps.at(-1)).toEqual({ op: 'chroot', path: '/run/s/root' });
    expect(steps).toContainEqual({ op: 'hostname', name: 'web' });
    expect(steps).toContainEqual(expect.objectContaining({ op: 'write', path: '/run/s/root/etc/resolv.conf' }));
    expect(steps).toContainEqual({ op: 'mkdir', path: '/run/s/root/tmp', mode: 0o1777 });
  });

  it("an exec's own root: a tmpfs upper over the machine's root, /workspace and volumes bound from it", () => {
    const steps = planExecRoot(
      {
        upperSizeMiB: 256,
        volumes: [
          { tag: 'vol0', path: '/src', readOnly: true },
          { tag: 'vol1', path: '/out' },
        ],
      },
      '/tmp/.x/3',
    );
    expect(mounts(steps)).toEqual([
      'tmpfs tmpfs /tmp/.x/3 2 mode=0700,size=256m',
      'overlay overlay /tmp/.x/3/root 0 lowerdir=/,upperdir=/tmp/.x/3/upper,workdir=/tmp/.x/3/work',
      'proc proc /tmp/.x/3/root/proc 14',
      'sysfs sysfs /tmp/.x/3/root/sys 14',
      'none /dev /tmp/.x/3/root/dev 20480',
      'tmpfs tmpfs /tmp/.x/3/root/tmp 6 mode=1777',
      'none /workspace /tmp/.x/3/root/workspace 4096',
      'none /src /tmp/.x/3/root/src 20480',
      // A bind mount only becomes read-only by a remount.
      'none /src /tmp/.x/3/root/src 4135',
      'none /out /tmp/.x/3/root/out 20480',
    ]);
    expect(steps[0]).toEqual({ op: 'mkdir', path: '/tmp/.x/3', mode: 0o700 });
    expect(steps.some((s) => s.op === 'chroot')).toBe(false);
  });

  it('bare VM: the agent image root is the lower layer', () => {
    const steps = planSetup({}, dev, '/run/s');
    expect(mounts(steps).slice(0, 2)).toEqual([
      'tmpfs tmpfs /run/s/rw 2 mode=0755',
      'overlay overlay /run/s/root 0 lowerdir=/,upperdir=/run/s/rw/upper,workdir=/run/s/rw/work',
    ]);
    expect(steps.some((s) => s.op === 'hostname')).toBe(false);
  });

  it('shared root (a container rootfs): the 9p share is the root itself, no overlay, no /workspace', () => {
    const steps = planSetup({ rootShare: { tag: 'root' } }, dev, '/run/s');
    expect(mounts(steps).slice(0, 2)).toEqual([
      `9p root /run/s/root 0 ${NINEP_OPTIONS}`,
      'proc proc /run/s/root/proc 14',
    ]);
    expect(steps.some((s) => s.op === 'mkdir' && s.path.endsWith('/workspace'))).toBe(false);
    expect(steps.at(-1)).toEqual({ op: 'chroot', path: '/run/s/root' });
  });

  it('persistent machine: upper layer and /workspace on disks', () => {
    const steps = planSetup(
      {
        image: { device: { path: '/dev/vdb' } },
        upper: { device: { serial: 'overlay' }, fstype: 'ext4', dir: '/layers' },
        workspace: { device: { serial: 'storage' }, fstype: 'ext4' },
      },
      dev,
      '/run/s',
    );
    expect(mounts(steps)).toEqual(
      expect.arrayContaining([
        'ext4 /dev/by-serial/overlay /run/s/rw 0 noinit_itable',
        'overlay overlay /run/s/root 0 lowerdir=/run/s/lower,upperdir=/run/s/rw/layers/upper,workdir=/run/s/rw/layers/work',
        'ext4 /dev/by-serial/storage /run/s/root/workspace 0 noinit_itable',
      ]),
    );
  });
});

describe('user resolution', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-users-'));
  fs.mkdirSync(path.join(root, 'etc'));
  fs.writeFileSync(
    path.join(root, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n',
  );
  fs.writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\nstaff:x:50:\napp:x:1001:\n');
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it.each([
    [undefined, { uid: 0, gid: 0, home: '/root', name: 'root' }],
    ['app', { uid: 1000, gid: 1001, home: '/home/app', name: 'app' }],
    ['1000', { uid: 1000, gid: 1001, home: '/home/app', name: 'app' }],
    ['app:staff', { uid: 1000, gid: 50, home: '/home/app', name: 'app' }],
    ['4242', { uid: 4242, gid: 0, home: '/', name: null }],
    ['4242:7', { uid: 4242, gid: 7, home: '/', name: null }],
  ])('%s', (spec, creds) => {
    expect(resolveUser(spec, root)).toEqual(creds);
  });

  it.each(['ghost', 'app:nogroup', 'a:b:c', ':5'])('refuses %s', (spec) => {
    expect(() => resolveUser(spec, root)).toThrow(expect.objectContaining({ code: 'unknown-user' }));
  });
});

describe('network interface choice', () => {
  it('takes the NIC with the MAC, else the first that is not lo', () => {
    const sys = fs.mkdtempSync(path.join(os.tmpdir(), 'sysnet-'));
    try {
      for (const [name, mac] of [
        ['lo', '00:00:00:00:00:00'],
        ['eth1', '52:54:00:00:00:02'],
        ['eth0', '52:54:00:12:34:56'],
      ]) {
        fs.mkdirSync(path.join(sys, name));
        fs.writeFileSync(path.join(sys, name, 'address'), `${mac}\n`);
      }
      expect(findInterface('52:54:00:12:34:56', sys)).toBe('eth0');
      expect(findInterface('52:54:00:00:00:02', sys)).toBe('eth1');
      expect(findInterface(undefined, sys)).toBe('eth0');
      expect(findInterface('52:54:00:99:99:99', sys)).toBeNull();
    } finally {
      fs.rmSync(sys, { recursive: true, force: true });
    }
  });
});

describe('root before a boot snapshot, run settings after the restore', () => {
  it('planRootOnly: the bare root with a run default settings, chrooted; nothing of a run', () => {
    const steps = planRootOnly({}, dev, '/run/s');
    expect(mounts(steps)).toEqual(mounts(planSetup({}, dev, '/run/s')));
    expect(steps).toContainEqual({
      op: 'write',
      path: '/run/s/root/etc/resolv.conf',
      content: expect.stringContaining('no network'),
      onlyIfMissing: false,
    });
    expect(steps.some((s) => s.op === 'hostname')).toBe(false);
    expect(steps.at(-1)).toEqual({ op: 'chroot', path: '/run/s/root' });
  });

  it('planRun: volumes, resolv.conf and hostname in the root the agent already runs in (/), no chroot', () => {
    const steps = planRun({
      hostname: 'web',
      volumes: [{ tag: 'vol0', path: '/src', readOnly: true }],
      resolvConf: 'nameserver 192.168.127.1\n',
    });
    expect(mounts(steps)).toEqual([`9p vol0 /src 7 ${NINEP_OPTIONS}`]);
    expect(steps).toContainEqual({ op: 'mkdir', path: '/src', mode: 0o755 });
    expect(steps).toContainEqual({
      op: 'write',
      path: '/etc/resolv.conf',
      content: 'nameserver 192.168.127.1\n',
      onlyIfMissing: false,
    });
    expect(steps).toContainEqual({ op: 'hostname', name: 'web' });
    expect(steps).toContainEqual(expect.objectContaining({ op: 'write', path: '/etc/hosts', onlyIfMissing: true }));
    expect(steps.some((s) => s.op === 'chroot')).toBe(false);
  });
});
