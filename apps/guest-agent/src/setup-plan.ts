// The guest root, as a list of steps computed from a SetupSpec (pure, so tests can check it on
// any machine) and executed by system.ts inside the VM:
//   <run>/lower   the image (erofs, read-only)        — bare VM: the agent image root itself
//   <run>/rw      tmpfs, or the persistent upper disk  — holds upper/ and work/
//   <run>/root    overlay(lower, rw/upper)            — plus proc, sys, dev, dev/pts, dev/shm,
//                 tmp, workspace, 9p volumes, resolv.conf, hostname; then the agent chroots here.
import path from 'node:path';
import { GUEST_RUN_DIR, type BlockDeviceRef, type RootSetupSpec, type SetupSpec } from '@smolvm/agent-protocol';
import { MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC, MS_REMOUNT } from './constants';

export type SetupStep =
  | { op: 'mkdir'; path: string; mode: number }
  | { op: 'mount'; source: string; target: string; fstype: string; flags: number; data: string | null }
  | { op: 'write'; path: string; content: string; onlyIfMissing: boolean }
  | { op: 'hostname'; name: string }
  | { op: 'chroot'; path: string };

export const NINEP_OPTIONS = 'trans=virtio,version=9p2000.L,msize=1048576,cache=loose';
const NO_RESOLVER = '# smolvm: this VM has no network; start it with --net for DNS\n';

/**
 * Machine disks are sparse files formatted with lazy inode tables; the kernel would otherwise
 * zero every table in the background, filling the host file and burning guest CPU for nothing
 * (uninitialised groups are flagged, so skipping it is safe).
 */
function diskOptions(fstype: string): string | null {
  return fstype === 'ext4' ? 'noinit_itable' : null;
}

/** The guest root, then the run's settings in it, then the chroot: one setup from scratch. */
export function planSetup(spec: SetupSpec, device: (ref: BlockDeviceRef) => string, run = GUEST_RUN_DIR): SetupStep[] {
  const root = path.join(run, 'root');
  return [...planRoot(spec, device, run), ...planRun(spec, root), { op: 'chroot', path: root }];
}

/**
 * The root with a run's default settings (no volumes, no network, no hostname), chrooted into:
 * what a boot snapshot may hold. A restored VM's planRun then applies its own run's settings.
 */
export function planRootOnly(
  spec: RootSetupSpec,
  device: (ref: BlockDeviceRef) => string,
  run = GUEST_RUN_DIR,
): SetupStep[] {
  const root = path.join(run, 'root');
  return [...planRoot(spec, device, run), ...planRun({}, root), { op: 'chroot', path: root }];
}

/** The image overlay and the API filesystems in it, under <run>/root. */
function planRoot(spec: RootSetupSpec, device: (ref: BlockDeviceRef) => string, run: string): SetupStep[] {
  const steps: SetupStep[] = [];
  const mkdir = (p: string, mode = 0o755) => steps.push({ op: 'mkdir', path: p, mode });
  const mount = (source: string, target: string, fstype: string, flags = 0, data: string | null = null) =>
    steps.push({ op: 'mount', source, target, fstype, flags, data });

  const root = path.join(run, 'root');
  mkdir(root);
  if (spec.rootShare) {
    // The host's directory is the root as it is (a container rootfs): writes land in it.
    mount(spec.rootShare.tag, root, '9p', 0, NINEP_OPTIONS);
  } else {
    planOverlay(spec, device, run, mount, mkdir);
  }
  apiFilesystems(spec, device, root, mount, mkdir);
  return steps;
}

type Mkdir = (p: string, mode?: number) => void;
type Mount = (source: string, target: string, fstype: string, flags?: number, data?: string | null) => void;

/** The image (or the agent image's own root) as the overlay's lower layer, at <run>/root. */
function planOverlay(
  spec: RootSetupSpec,
  device: (ref: BlockDeviceRef) => string,
  run: string,
  mount: Mount,
  mkdir: Mkdir,
): void {
  const lower = path.join(run, 'lower');
  const rw = path.join(run, 'rw');
  const root = path.join(run, 'root');
  mkdir(rw);
  let lowerDir = '/';
  if (spec.image) {
    mkdir(lower);
    mount(device(spec.image.device), lower, spec.image.fstype ?? 'erofs', MS_RDONLY);
    lowerDir = lower;
  }
  let upperBase = rw;
  if (spec.upper) {
    mount(device(spec.upper.device), rw, spec.upper.fstype, 0, diskOptions(spec.upper.fstype));
    upperBase = path.join(rw, spec.upper.dir ?? '/');
  } else {
    mount('tmpfs', rw, 'tmpfs', MS_NOSUID, spec.upperSizeMiB ? `mode=0755,size=${spec.upperSizeMiB}m` : 'mode=0755');
  }
  mkdir(path.join(upperBase, 'upper'));
  mkdir(path.join(upperBase, 'work'));
  mount('overlay', root, 'overlay', 0, `lowerdir=${lowerDir},upperdir=${upperBase}/upper,workdir=${upperBase}/work`);
}

/** proc, sys, dev, dev/pts, dev/shm, tmp and the workspace in the root at `root`. */
function apiFilesystems(
  spec: RootSetupSpec,
  device: (ref: BlockDeviceRef) => string,
  root: string,
  mount: Mount,
  mkdir: Mkdir,
): void {
  const r = (p: string) => path.join(root, p);
  // A shared root is the user's own tree: no /workspace appears in it.
  for (const dir of ['proc', 'sys', 'dev', 'etc', ...(spec.rootShare ? [] : ['workspace'])]) mkdir(r(dir));
  mkdir(r('tmp'), 0o1777);
  mount('proc', r('proc'), 'proc', MS_NOSUID | MS_NODEV | MS_NOEXEC);
  mount('sysfs', r('sys'), 'sysfs', MS_NOSUID | MS_NODEV | MS_NOEXEC);
  mount('devtmpfs', r('dev'), 'devtmpfs', MS_NOSUID, 'mode=0755');
  mkdir(r('dev/pts'));
  mkdir(r('dev/shm'), 0o1777);
  mount('devpts', r('dev/pts'), 'devpts', MS_NOSUID | MS_NOEXEC, 'newinstance,ptmxmode=0666,mode=0620,gid=5');
  mount('shm', r('dev/shm'), 'tmpfs', MS_NOSUID | MS_NODEV, 'mode=1777');
  mount('tmpfs', r('tmp'), 'tmpfs', MS_NOSUID | MS_NODEV, 'mode=1777');
  if (spec.workspace)
    mount(device(spec.workspace.device), r('workspace'), spec.workspace.fstype, 0, diskOptions(spec.workspace.fstype));
}

/** The 9p volumes' mounts (also what a machine snapshot detaches and attaches again: `shares`). */
export function planVolumes(volumes: NonNullable<SetupSpec['volumes']>, root = '/'): SetupStep[] {
  const steps: SetupStep[] = [];
  for (const v of volumes) {
    const target = path.join(root, v.path);
    steps.push({ op: 'mkdir', path: target, mode: 0o755 });
    // nosuid, nodev: the guest's view of a share's modes and device numbers comes from xattrs
    // (QEMU's mapped-xattr model) that a host user with write access to the folder can set too.
    const flags = MS_NOSUID | MS_NODEV | (v.readOnly ? MS_RDONLY : 0);
    steps.push({ op: 'mount', source: v.tag, target, fstype: '9p', flags, data: NINEP_OPTIONS });
  }
  return steps;
}

/**
 * A run's settings in a root at `root`: the root's directory before the chroot, or `/` once the
 * agent runs chrooted in a root built earlier (setupRoot, then a snapshot restore).
 */
export function planRun(spec: SetupSpec, root = '/'): SetupStep[] {
  const steps: SetupStep[] = planVolumes(spec.volumes ?? [], root);
  const r = (p: string) => path.join(root, p);
  steps.push({
    op: 'write',
    path: r('etc/resolv.conf'),
    content: spec.resolvConf ?? NO_RESOLVER,
    onlyIfMissing: false,
  });
  if (spec.hostname) {
    steps.push({ op: 'hostname', name: spec.hostname });
    steps.push({ op: 'write', path: r('etc/hostname'), content: `${spec.hostname}\n`, onlyIfMissing: false });
    steps.push({
      op: 'write',
      path: r('etc/hosts'),
      content: `127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t${spec.hostname}\n`,
      onlyIfMissing: true,
    });
  }
  return steps;
}

/** Where the agent, chrooted into the machine's root, makes each exec's own root (execRoot 'fresh'). */
export const EXEC_ROOTS_DIR = '/tmp/.smolvm-exec';

/**
 * One exec's own root at `<dir>/root` (execRoot 'fresh'), made from inside the machine's root:
 * an overlay whose lower layer is the machine's root itself and whose upper layer is a tmpfs of
 * its own, so what the exec writes there is gone when it ends. /workspace and the volumes are
 * the machine's (bound), so what is written there is kept; /dev is shared, /proc, /sys and /tmp
 * are its own. `dir` lies under the machine's /tmp, a mount an overlay lower layer does not
 * show, so no exec sees another's.
 */
export function planExecRoot(spec: SetupSpec, dir: string): SetupStep[] {
  const steps: SetupStep[] = [];
  const mkdir = (p: string, mode = 0o755) => steps.push({ op: 'mkdir', path: p, mode });
  const mount = (source: string, target: string, fstype: string, flags = 0, data: string | null = null) =>
    steps.push({ op: 'mount', source, target, fstype, flags, data });
  const root = path.join(dir, 'root');
  const r = (p: string) => path.join(root, p);
  mkdir(dir, 0o700);
  mount('tmpfs', dir, 'tmpfs', MS_NOSUID, spec.upperSizeMiB ? `mode=0700,size=${spec.upperSizeMiB}m` : 'mode=0700');
  for (const d of ['upper', 'work', 'root']) mkdir(path.join(dir, d));
  mount('overlay', root, 'overlay', 0, `lowerdir=/,upperdir=${dir}/upper,workdir=${dir}/work`);
  for (const d of ['proc', 'sys', 'dev', 'workspace']) mkdir(r(d));
  mkdir(r('tmp'), 0o1777);
  mount('proc', r('proc'), 'proc', MS_NOSUID | MS_NODEV | MS_NOEXEC);
  mount('sysfs', r('sys'), 'sysfs', MS_NOSUID | MS_NODEV | MS_NOEXEC);
  // With dev/pts and dev/shm: a pty the agent opens is the exec's terminal.
  mount('/dev', r('dev'), 'none', MS_BIND | MS_REC);
  mount('tmpfs', r('tmp'), 'tmpfs', MS_NOSUID | MS_NODEV, 'mode=1777');
  mount('/workspace', r('workspace'), 'none', MS_BIND);
  for (const v of spec.volumes ?? []) {
    mkdir(r(v.path));
    mount(v.path, r(v.path), 'none', MS_BIND | MS_REC);
    if (v.readOnly) mount(v.path, r(v.path), 'none', MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV);
  }
  return steps;
}
