// driver-hvf: QEMU with Hypervisor.framework on macOS (arm64). It shares everything with
// driver-kvm through @smolvm/qemu except the machine and the probe. Not booted in CI: see README.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import { DriverUnavailableError, type Driver, type ProbeResult, type VmHandle, type VmSpec } from '@smolvm/driver-api';
import { findExecutable, type Supervision } from '@smolvm/driver-kit';
import { QEMU_WIRING, launchQemu } from '@smolvm/qemu';
import { virtHvfTarget } from './target';

export interface HvfDriverOptions {
  qemuBinary?: string;
  env?: NodeJS.ProcessEnv;
  /** Defaults to the host's; tests pass 'darwin' to reach the macOS checks. */
  platform?: NodeJS.Platform;
  arch?: string;
  /** Reads a sysctl; default runs `sysctl -n NAME`. */
  sysctl?: (name: string) => string | undefined;
  supervision?: Supervision;
}

export const HVF_DRIVER_NAME = 'hvf';

export function createHvfDriver(options: HvfDriverOptions = {}): Driver {
  const env = options.env ?? process.env;
  const binary = options.qemuBinary ?? 'qemu-system-aarch64';
  const platform = options.platform ?? process.platform;
  const arch = options.arch ?? process.arch;
  const sysctl = options.sysctl ?? readSysctl;

  async function probe(): Promise<ProbeResult> {
    if (platform !== 'darwin') {
      return { available: false, reason: 'hvf is only available on macOS', remedy: 'on Linux use the kvm driver' };
    }
    if (arch !== 'arm64') {
      return { available: false, reason: `the hvf driver runs arm64 guests on Apple silicon (this Mac is ${arch})` };
    }
    if (sysctl('kern.hv_support') !== '1') {
      return {
        available: false,
        reason: 'Hypervisor.framework is not supported on this Mac (kern.hv_support is not 1)',
      };
    }
    if (!findExecutable(binary, env)) {
      return { available: false, reason: `${binary} not found`, remedy: 'install QEMU (brew install qemu)' };
    }
    // QEMU's wiring; no snapshot capability (yet) on macOS.
    const cpu = crypto
      .createHash('sha256')
      .update(sysctl('machdep.cpu.brand_string') ?? '')
      .digest('hex')
      .slice(0, 12);
    return {
      available: true,
      accelerator: 'hvf',
      features: { ...QEMU_WIRING, snapshot: false },
      guestCpu: `${HVF_DRIVER_NAME}-hvf-${cpu}`,
    };
  }

  async function start(spec: VmSpec): Promise<VmHandle> {
    const result = await probe();
    if (!result.available)
      throw new DriverUnavailableError(HVF_DRIVER_NAME, result.reason ?? 'probe failed', { remedy: result.remedy });
    // Supervision falls back to the pipe watchdog: macOS has no PR_SET_PDEATHSIG.
    return launchQemu(spec, virtHvfTarget(binary), { env, supervision: options.supervision });
  }

  return { name: HVF_DRIVER_NAME, probe, start };
}

function readSysctl(name: string): string | undefined {
  try {
    return execFileSync('sysctl', ['-n', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}
