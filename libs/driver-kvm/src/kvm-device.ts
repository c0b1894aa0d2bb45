// Asks the kernel itself whether KVM works: opens the device and issues the ioctls QEMU would
// (through koffi, no native addon of ours), so the reason we report is the real one.
import fs from 'node:fs';
import os from 'node:os';
import { requireNative } from '@smolvm/sea';

// From <linux/kvm.h>: _IO(KVMIO = 0xAE, nr).
const KVM_GET_API_VERSION = 0xae00;
const KVM_CREATE_VM = 0xae01;
const KVM_CHECK_EXTENSION = 0xae03;
const KVM_API_VERSION = 12;
const KVM_CAP_IRQCHIP = 0;
const KVM_CAP_USER_MEMORY = 3;
const KVM_CAP_MAX_VCPUS = 66;
/** The misc device /dev/kvm is (<linux/miscdevice.h>: major 10, KVM_MINOR 232), as Linux encodes st_rdev. */
const KVM_DEVICE_RDEV = (10 << 8) | 232;

export interface KvmStatus {
  usable: boolean;
  /** Why not, phrased for a user; set when !usable. */
  reason?: string;
  remedy?: string;
  apiVersion?: number;
  maxVcpus?: number;
}

const ENABLE_REMEDY =
  'enable hardware virtualization (VT-x/AMD-V, or nested virtualization for a cloud VM) and load the kvm module (modprobe kvm_intel or kvm_amd)';

type Ioctl = (fd: number, request: number, ...typedArgs: unknown[]) => number;
let ioctlFn: Ioctl | undefined;

// Loaded on first use, synchronously: only VM-running commands pay for the native module, and
// tests can decide at definition time whether KVM suites run.
function loadIoctl(): Ioctl {
  if (!ioctlFn) {
    const koffi = requireNative<typeof import('koffi')>('koffi', __filename);
    const libc = koffi.load('libc.so.6');
    const fn = libc.func('int ioctl(int fd, unsigned long request, ...)');
    ioctlFn = (fd, request, ...typedArgs) => {
      const result: number = fn(fd, request, ...typedArgs);
      // errno must be read before anything else can call into libc.
      if (result < 0) throw Object.assign(new Error('ioctl failed'), { errno: koffi.errno() });
      return result;
    };
  }
  return ioctlFn;
}

export interface KvmProbeOptions {
  /** Where the CPU flags come from (tests inject one). Default /proc/cpuinfo. */
  cpuinfo?: string;
  /** Where loaded modules are listed. Default /sys/module. */
  sysModule?: string;
}

export async function probeKvmDevice(device = '/dev/kvm', options: KvmProbeOptions = {}): Promise<KvmStatus> {
  return probeKvmDeviceSync(device, options);
}

export function probeKvmDeviceSync(device = '/dev/kvm', options: KvmProbeOptions = {}): KvmStatus {
  if (process.platform !== 'linux')
    return { usable: false, reason: `KVM exists only on Linux (this is ${process.platform})` };
  let fd: number;
  try {
    fd = fs.openSync(device, fs.constants.O_RDWR);
  } catch (err) {
    return openFailure(device, err as NodeJS.ErrnoException);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isCharacterDevice()) {
      return { usable: false, reason: `${device} is not a character device`, remedy: ENABLE_REMEDY };
    }
    // The KVM device (any path to it has this st_rdev) on a CPU without VT-x/AMD-V: software KVM
    // whatever its ioctls answer, told without them (loading koffi for them was ~12 ms of every VM
    // start on such hosts). Another device is told by its ioctls' failure below.
    if (st.rdev === KVM_DEVICE_RDEV) {
      const software = softwareKvm(device, options);
      if (software) return { usable: false, ...software };
    }
    let ioctl: Ioctl;
    try {
      ioctl = loadIoctl();
    } catch (err) {
      return {
        usable: false,
        reason: `cannot call ioctl through koffi: ${(err as Error).message}`,
        remedy: 'run tools/setup (reinstalls node modules)',
      };
    }
    const call = (what: string, request: number, arg?: number): number | KvmStatus => {
      try {
        return arg === undefined ? ioctl(fd, request) : ioctl(fd, request, 'int', arg);
      } catch (err) {
        const code = errnoName((err as { errno?: number }).errno);
        if (request === KVM_GET_API_VERSION && (code === 'ENOTTY' || code === 'EINVAL')) {
          return { usable: false, reason: `${device} is not a KVM device (${what}: ${code})`, remedy: ENABLE_REMEDY };
        }
        return { usable: false, reason: `${device}: ${what} failed: ${code}`, remedy: ENABLE_REMEDY };
      }
    };
    const apiVersion = call('KVM_GET_API_VERSION', KVM_GET_API_VERSION);
    if (typeof apiVersion !== 'number') return apiVersion;
    if (apiVersion !== KVM_API_VERSION) {
      return {
        usable: false,
        apiVersion,
        reason: `${device} speaks KVM API version ${apiVersion}, QEMU needs ${KVM_API_VERSION}`,
        remedy: 'update the host kernel',
      };
    }
    for (const [cap, name] of [
      [KVM_CAP_USER_MEMORY, 'KVM_CAP_USER_MEMORY'],
      [KVM_CAP_IRQCHIP, 'KVM_CAP_IRQCHIP'],
    ] as const) {
      const has = call(`KVM_CHECK_EXTENSION(${name})`, KVM_CHECK_EXTENSION, cap);
      if (typeof has !== 'number') return has;
      if (has <= 0)
        return { usable: false, apiVersion, reason: `${device} lacks ${name}`, remedy: 'update the host kernel' };
    }
    const maxVcpus = call('KVM_CHECK_EXTENSION(KVM_CAP_MAX_VCPUS)', KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    // Creating (and dropping) a VM catches what the version check cannot: virtualization
    // extensions held by another hypervisor (EBUSY), or disabled after boot.
    const vmFd = call('KVM_CREATE_VM', KVM_CREATE_VM, 0);
    if (typeof vmFd !== 'number') {
      return vmFd.reason?.endsWith('EBUSY')
        ? {
            ...vmFd,
            reason: `${vmFd.reason} (another hypervisor holds the virtualization extensions)`,
            remedy: 'quit other hypervisors (VirtualBox, VMware) and try again',
          }
        : vmFd;
    }
    fs.closeSync(vmFd);
    return { usable: true, apiVersion, maxVcpus: typeof maxVcpus === 'number' ? maxVcpus : undefined };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * KVM that answers every ioctl yet has no VT-x/AMD-V under it is a software implementation —
 * PVM (kvm_pvm: shadow paging + instruction emulation). Measured on such a host: our stock guest
 * kernel spends seconds on memory init, then stops with "KVM internal error: emulation failure"
 * (at cmpxchg16b, then xrstor with -cx16). Only PVM-enabled guest kernels run there, so for
 * smolvm it is not usable KVM. Hardware KVM always shows vmx or svm in the host's CPU flags.
 */
function softwareKvm(device: string, options: KvmProbeOptions): Pick<KvmStatus, 'reason' | 'remedy'> | undefined {
  let cpuinfo: string;
  try {
    cpuinfo = fs.readFileSync(options.cpuinfo ?? '/proc/cpuinfo', 'utf8');
  } catch {
    return undefined; // cannot tell: trust the ioctls
  }
  const flags = /^flags\s*:(.*)$/m.exec(cpuinfo)?.[1].split(/\s+/) ?? [];
  if (flags.includes('vmx') || flags.includes('svm')) return undefined;
  const pvm = fs.existsSync(`${options.sysModule ?? '/sys/module'}/kvm_pvm`);
  return {
    reason: `${device} is ${pvm ? 'PVM (kvm_pvm)' : 'a software KVM'} without VT-x/AMD-V underneath, which cannot boot standard guest kernels`,
    remedy: 'use a host or cloud instance with hardware virtualization (VT-x/AMD-V, or nested virtualization enabled)',
  };
}

function openFailure(device: string, err: NodeJS.ErrnoException): KvmStatus {
  switch (err.code) {
    case 'ENOENT':
      return { usable: false, reason: `no ${device}: this host has no KVM`, remedy: ENABLE_REMEDY };
    case 'EACCES':
    case 'EPERM':
      return {
        usable: false,
        reason: `${device}: permission denied`,
        remedy: `add yourself to group kvm (sudo usermod -aG kvm ${os.userInfo().username}) and log in again`,
      };
    case 'ENXIO':
    case 'ENODEV':
      return {
        usable: false,
        reason: `${device} exists but no KVM module is loaded (${err.code})`,
        remedy: ENABLE_REMEDY,
      };
    default:
      return { usable: false, reason: `cannot open ${device}: ${err.code ?? err.message}`, remedy: ENABLE_REMEDY };
  }
}

function errnoName(errno: number | undefined): string {
  if (errno === undefined) return 'unknown error';
  const name = Object.entries(os.constants.errno).find(([, n]) => n === errno)?.[0];
  return name ?? `errno ${errno}`;
}
