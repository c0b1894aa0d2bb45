// Privileged operations on the VM itself: root setup, clock, power. Only ever constructed inside
// the agent image (its marker file present, running as root), so no test run on a host can
// mount over, chroot or reboot that host.
import { spawnSync } from 'node:child_process';
import { FIFREEZE, MS_RDONLY } from './constants';
import fs from 'node:fs';
import path from 'node:path';
import {
  AGENT_IMAGE_MARKER,
  AgentRequestError,
  type BlockDeviceRef,
  type GuestNetwork,
  type RootSetupSpec,
  type SetupSpec,
  type VolumeMount,
} from '@smolvm/agent-protocol';
import { BLKFLSBUF, CLOCK_REALTIME, MNT_DETACH, MS_BIND, RB_AUTOBOOT, RNDADDENTROPY, RNDRESEEDCRNG } from './constants';
import { check, libc } from './libc';
import {
  EXEC_ROOTS_DIR,
  planExecRoot,
  planRootOnly,
  planRun,
  planSetup,
  planVolumes,
  type SetupStep,
} from './setup-plan';

export interface GuestSystem {
  readonly isSetUp: boolean;
  /** The whole setup: root, the run's settings, chroot. */
  setup(spec: SetupSpec): Promise<void>;
  /** Only the root, chrooted into (before a boot snapshot). */
  setupRoot(spec: RootSetupSpec): Promise<void>;
  /** The run's settings in a root setupRoot built (after a restore). */
  configure(spec: SetupSpec): Promise<void>;
  setTime(epochMs: number): void;
  reseed(entropy: Buffer): void;
  /** The hostname of a copy restored from a machine snapshot (kernel and /etc/hostname). */
  identity(spec: { hostname: string }): void;
  /** Unmounts or mounts again these 9p volumes (chrooted: at their guest paths). */
  shares(volumes: VolumeMount[], mounted: boolean): void;
  prepareShutdown(): Promise<void>;
  powerOff(): void;
  /** Drops the clean page cache, where the host takes back what is freed (idle-trim.ts). */
  trimMemory(): void;
  /** A root of one exec's own over the machine's root (SetupSpec.execRoot 'fresh'; setup-plan.ts). */
  execRoot(spec: SetupSpec): ExecRoot;
}

export interface ExecRoot {
  /**
   * Runs `start` with the agent chrooted into the exec's root, then returns to the machine's
   * root: what `start` spawns synchronously (the command) lives in the exec's root from then on.
   */
  enter<T>(start: () => T): T;
  /** Detaches the exec's root (processes still in it keep it until they end). */
  remove(): void;
}

/**
 * Free page reporting hands back free blocks of 128 KiB and up. The kernel's choice (its pageblock
 * order: 4 MiB blocks here, set when the balloon driver registers, so a kernel argument cannot
 * change it) leaves a fragmented guest's free memory on the host: measured, a 256 MiB guest
 * after reading 120 MB held 156 MiB of host memory, 99 MiB with 128 KiB blocks.
 */
const PAGE_REPORTING_ORDER = 5;

function reportSmallerBlocks(): void {
  try {
    fs.writeFileSync('/sys/module/page_reporting/parameters/page_reporting_order', String(PAGE_REPORTING_ORDER));
  } catch {
    // An older kernel without the parameter reports 4 MiB blocks: less returned, nothing broken.
  }
}

/**
 * Whether freed guest memory goes back to the host: a virtio-balloon device with free page
 * reporting bound to its driver. Without it (a VM restored from a snapshot) a trim would only
 * cost re-reads.
 */
export function hasFreePageReporting(virtioDrivers = '/sys/bus/virtio/drivers'): boolean {
  try {
    return fs.readdirSync(path.join(virtioDrivers, 'virtio_balloon')).some((entry) => entry.startsWith('virtio'));
  } catch {
    return false;
  }
}

/** Every disk with a serial, by serial (each read of a serial is a request to the virtio device). */
export function disksBySerial(sysBlock = '/sys/block'): Map<string, string> {
  const disks = new Map<string, string>();
  for (const dev of fs.readdirSync(sysBlock)) {
    try {
      disks.set(fs.readFileSync(path.join(sysBlock, dev, 'serial'), 'utf8').trim(), path.join('/dev', dev));
    } catch {
      // Not a virtio disk with a serial.
    }
  }
  return disks;
}

/**
 * The disks as the agent found them when it started: a VM restored from a snapshot has the saved
 * VM's devices in the same slots (the snapshot's shape), so the map it holds is still right and a
 * restored setup reads no serials. A serial not in it (never expected) is looked for again.
 */
let knownDisks: Map<string, string> | undefined;

export function findDeviceBySerial(serial: string, sysBlock = '/sys/block'): string | null {
  const known = knownDisks?.get(serial);
  if (known) return known;
  knownDisks = disksBySerial(sysBlock);
  return knownDisks.get(serial) ?? null;
}

function resolveDevice(ref: BlockDeviceRef): string {
  if ('path' in ref) return ref.path;
  const dev = findDeviceBySerial(ref.serial);
  if (!dev)
    throw new AgentRequestError(
      'setup',
      'setup-failed',
      `no disk with serial '${ref.serial}' (is it attached to the VM?)`,
    );
  return dev;
}

/**
 * Drops what the kernel cached of a block device. After a snapshot restore a disk can be backed
 * by another file than when the guest last read it (the image slot): stale sectors must go.
 */
function flushBlockBuffers(device: string): void {
  const fd = fs.openSync(device, fs.constants.O_RDONLY);
  try {
    check(libc().ioctlBuffer(fd, BLKFLSBUF, null), `BLKFLSBUF ${device}`);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Writable ext4 disks (a machine's overlay and storage), each held by a descriptor of its mount
 * point: the upper disk's is outside the root the agent chroots into.
 */
type WritableDisks = number[];

/**
 * Freezes each disk: ext4 checkpoints its journal and marks itself clean, as an unmount would,
 * with the user's processes still running (they block on it). The VM powers off right after, so
 * nothing thaws them; the next mount of these disks (the next `machine start`) has no journal to
 * replay. A disk that will not freeze (an I/O error) is left as sync left it: replayed next time.
 */
function freezeDisks(disks: WritableDisks): void {
  for (const fd of disks.splice(0)) libc().ioctlBuffer(fd, FIFREEZE, null);
}

/** A root's steps, holding the writable disks they mount before their chroot hides the upper one. */
function runRootSteps(steps: SetupStep[], disks: WritableDisks): void {
  const chroot = steps.findIndex((s) => s.op === 'chroot');
  const before = chroot < 0 ? steps : steps.slice(0, chroot);
  runSteps(before);
  for (const s of before) {
    if (s.op === 'mount' && s.fstype === 'ext4' && !(s.flags & MS_RDONLY))
      disks.push(fs.openSync(s.target, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY));
  }
  runSteps(steps.slice(before.length));
}

/** One step (exported for tests: the write step runs on any machine). */
export function runStep(step: SetupStep): void {
  const c = libc();
  switch (step.op) {
    case 'mkdir':
      fs.mkdirSync(step.path, { recursive: true, mode: step.mode });
      return;
    case 'mount':
      if (step.source.startsWith('/dev/') && !(step.flags & MS_BIND)) flushBlockBuffers(step.source);
      check(
        c.mount(step.source, step.target, step.fstype, step.flags, step.data),
        `mount -t ${step.fstype} ${step.source} ${step.target}`,
      );
      return;
    case 'write': {
      if (step.onlyIfMissing && fs.existsSync(step.path)) return;
      const existing = fs.lstatSync(step.path, { throwIfNoEntry: false });
      // Images often ship resolv.conf as a symlink into a resolver's runtime dir: replace it
      // rather than write through it. (No exception on the common path: a restored VM pays for
      // every code path it runs first.)
      if (existing && !existing.isFile()) fs.rmSync(step.path, { recursive: true, force: true });
      // A machine's root keeps what its last start wrote: an unchanged file is not written again (a write
      // to the overlay's disk costs a restored guest tens of ms).
      else if (
        existing?.size === Buffer.byteLength(step.content) &&
        fs.readFileSync(step.path, 'utf8') === step.content
      )
        return;
      fs.writeFileSync(step.path, step.content, { mode: 0o644 });
      return;
    }
    case 'hostname':
      check(c.sethostname(step.name, Buffer.byteLength(step.name)), 'sethostname');
      return;
    case 'chroot':
      check(c.chroot(step.path), `chroot ${step.path}`);
      process.chdir('/');
      return;
  }
}

/**
 * boot_id is fixed by the kernel the first time it is read, so copies of one running machine
 * would share it: each copy's is masked with a fresh one (bind-mounted over the proc file in the
 * guest root). From the kernel's RNG, reseeded by then: the agent's own (node/OpenSSL) RNG state
 * is the same in every copy. A fresh procfs mounted elsewhere still shows the kernel's value.
 */
function maskBootId(): void {
  const target = '/proc/sys/kernel/random/boot_id';
  const bytes = Buffer.alloc(16);
  const fd = fs.openSync('/dev/urandom', 'r');
  try {
    fs.readSync(fd, bytes, 0, 16, null);
  } finally {
    fs.closeSync(fd);
  }
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  const uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  // The file needs a home only until mounted: the mount keeps its inode.
  const file = `/dev/.smolvm-boot-id-${hex.slice(0, 8)}`;
  fs.writeFileSync(file, `${uuid}\n`, { mode: 0o444 });
  try {
    const c = libc();
    c.umount2(target, MNT_DETACH); // an earlier copy's mask, if any
    check(c.mount(file, target, null, MS_BIND, null), `mount --bind ${target}`);
  } finally {
    fs.rmSync(file, { force: true });
  }
}

function runSteps(steps: SetupStep[]): void {
  for (const step of steps) {
    try {
      runStep(step);
    } catch (err) {
      if (err instanceof AgentRequestError) throw err;
      throw new AgentRequestError('setup', 'setup-failed', (err as Error).message);
    }
  }
}

let execRoots = 0;

function makeExecRoot(spec: SetupSpec): ExecRoot {
  const c = libc();
  const dir = `${EXEC_ROOTS_DIR}/${++execRoots}`;
  let removed = false;
  const remove = () => {
    if (removed) return;
    removed = true;
    // Lazily, with everything mounted under it: a background process may still be in there.
    c.umount2(dir, MNT_DETACH);
    try {
      // Not recursive: were anything still mounted there (/workspace), it must not be emptied.
      fs.rmdirSync(dir);
    } catch {
      // Left behind in the machine's /tmp (a tmpfs): gone at the next start.
    }
  };
  try {
    runSteps(planExecRoot(spec, dir));
  } catch (err) {
    remove();
    throw err;
  }
  return {
    enter(start) {
      // The way back: a handle on the machine's root, which chroot alone would leave behind.
      const back = fs.openSync('/', 'r');
      try {
        check(c.chroot(`${dir}/root`), 'chroot into the exec root');
        process.chdir('/');
        return start();
      } finally {
        check(c.fchdir(back), 'fchdir');
        check(c.chroot('.'), 'chroot back');
        process.chdir('/');
        fs.closeSync(back);
      }
    },
    remove,
  };
}

/** The NIC to configure: the one with `mac`, else the first that is not `lo`. */
export function findInterface(mac: string | undefined, sysNet = '/sys/class/net'): string | null {
  const names = fs
    .readdirSync(sysNet)
    .filter((n) => n !== 'lo')
    .sort();
  if (mac === undefined) return names[0] ?? null;
  for (const name of names) {
    try {
      if (
        fs
          .readFileSync(path.join(sysNet, name, 'address'), 'utf8')
          .trim()
          .toLowerCase() === mac
      )
        return name;
    } catch {
      // Not a network device with an address.
    }
  }
  return null;
}

// <linux/sockios.h>, <net/if.h>: struct ifreq is 16 bytes of name, then a union (flags: short).
const SIOCGIFFLAGS = 0x8913;
const SIOCSIFFLAGS = 0x8914;
const IFF_UP = 0x1;
const AF_INET = 2;
const SOCK_DGRAM = 2;

/**
 * Loopback up in every VM, networked or not (plenty of programs talk to themselves). Two ioctls,
 * no process: done when the agent starts, so VMs restored from a boot snapshot already have it.
 */
export function loopbackUp(): void {
  const c = libc();
  const fd = check(c.socket(AF_INET, SOCK_DGRAM, 0), 'socket');
  try {
    const ifr = Buffer.alloc(40);
    ifr.write('lo');
    check(c.ioctlBuffer(fd, SIOCGIFFLAGS, ifr), 'SIOCGIFFLAGS lo');
    ifr.writeUInt16LE(ifr.readUInt16LE(16) | IFF_UP, 16);
    check(c.ioctlBuffer(fd, SIOCSIFFLAGS, ifr), 'SIOCSIFFLAGS lo');
  } finally {
    c.close(fd);
  }
}

/**
 * Static IPv4 on the NIC when there is one, with busybox `ip` (the agent image's, through the agent's open descriptor):
 * four short commands are simpler and as fast as netlink from koffi, and busybox reports errors clearly.
 */
function configureNetwork(network: GuestNetwork | undefined, busybox: string): void {
  const ip = (...args: string[]) => {
    const r = spawnSync(busybox, ['ip', ...args], {
      argv0: 'busybox',
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 10_000,
    });
    if (r.status !== 0) {
      const why = r.stderr?.toString().trim() || r.error?.message || `exit ${r.status ?? r.signal}`;
      throw new AgentRequestError('setup', 'setup-failed', `ip ${args.join(' ')}: ${why}`);
    }
  };
  if (!network) return;
  const dev = findInterface(network.mac);
  if (!dev)
    throw new AgentRequestError(
      'setup',
      'setup-failed',
      `no network interface${network.mac ? ` with MAC ${network.mac}` : ''} (is the NIC attached to the VM?)`,
    );
  ip('link', 'set', 'dev', dev, 'mtu', String(network.mtu), 'up');
  ip('addr', 'add', `${network.ip}/${network.prefix}`, 'dev', dev);
  ip('route', 'add', 'default', 'via', network.gateway, 'dev', dev);
}

export function createGuestSystem(options: { busybox?: string } = {}): GuestSystem {
  if (!fs.existsSync(AGENT_IMAGE_MARKER) || process.getuid?.() !== 0) {
    throw new Error(
      `not running in the smolvm agent image (${AGENT_IMAGE_MARKER} missing or not root): refusing privileged operations`,
    );
  }
  const c = libc();
  loopbackUp();
  let setUp = false;
  const disks: WritableDisks = [];
  let frozen = false;
  // Looked up before the agent chroots into the run's root.
  const reporting = hasFreePageReporting();
  if (reporting) reportSmallerBlocks();
  try {
    knownDisks = disksBySerial();
  } catch {
    // No /sys/block (a test root): looked up when a setup needs a disk.
  }
  return {
    get isSetUp() {
      return setUp;
    },
    async setup(spec) {
      if (setUp) throw new AgentRequestError('setup', 'bad-request', 'the guest root is already set up');
      setUp = true;
      configureNetwork(spec.network, options.busybox ?? '/bin/busybox');
      runRootSteps(planSetup(spec, resolveDevice), disks);
    },
    async setupRoot(spec) {
      if (setUp) throw new AgentRequestError('setupRoot', 'bad-request', 'the guest root is already set up');
      setUp = true;
      runRootSteps(planRootOnly(spec, resolveDevice), disks);
    },
    async configure(spec) {
      configureNetwork(spec.network, options.busybox ?? '/bin/busybox');
      runSteps(planRun(spec));
    },
    setTime(epochMs) {
      const ts = { tv_sec: Math.floor(epochMs / 1000), tv_nsec: (epochMs % 1000) * 1e6 };
      check(c.clockSettime(CLOCK_REALTIME, ts), 'clock_settime');
    },
    reseed(entropy) {
      // struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
      const info = Buffer.alloc(8 + entropy.length);
      info.writeInt32LE(entropy.length * 8, 0);
      info.writeInt32LE(entropy.length, 4);
      entropy.copy(info, 8);
      const fd = fs.openSync('/dev/urandom', fs.constants.O_RDWR);
      try {
        check(c.ioctlBuffer(fd, RNDADDENTROPY, info), 'RNDADDENTROPY');
        // Credited entropy alone only reseeds on the kernel's schedule (minutes): force it now.
        check(c.ioctlBuffer(fd, RNDRESEEDCRNG, null), 'RNDRESEEDCRNG');
      } finally {
        fs.closeSync(fd);
      }
    },
    shares(volumes, mounted) {
      if (mounted) {
        runSteps(planVolumes(volumes));
        return;
      }
      const done: VolumeMount[] = [];
      try {
        for (const v of [...volumes].reverse()) {
          check(c.umount2(v.path, 0), `umount ${v.path}`);
          done.unshift(v);
        }
      } catch (err) {
        // All or none: what was unmounted is mounted again.
        runSteps(planVolumes(done));
        throw err;
      }
    },
    identity(spec) {
      runSteps([
        { op: 'hostname', name: spec.hostname },
        { op: 'write', path: '/etc/hostname', content: `${spec.hostname}\n`, onlyIfMissing: false },
      ]);
      maskBootId();
    },
    async prepareShutdown() {
      c.sync();
      frozen = disks.length > 0;
      freezeDisks(disks);
    },
    execRoot(spec) {
      return makeExecRoot(spec);
    },
    trimMemory() {
      // 1: page cache only; dentries and inodes are small and cost more to rebuild.
      if (reporting) fs.writeFileSync('/proc/sys/vm/drop_caches', '1');
    },
    powerOff() {
      // With QEMU -no-reboot and the kernel's reboot=t, a reboot ends QEMU; microvm without ACPI
      // has no power-off to offer. Frozen disks have nothing left to write.
      if (!frozen) c.sync();
      c.reboot(RB_AUTOBOOT);
    },
  };
}
