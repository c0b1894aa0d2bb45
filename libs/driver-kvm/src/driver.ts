// driver-kvm: QEMU microvm on Linux x86-64, with KVM when the host has it and TCG otherwise.
import crypto from 'node:crypto';
import fs from 'node:fs';
import {
  DriverUnavailableError,
  SnapshotError,
  PrestartMismatchError,
  type PrestartedRestore,
  type Driver,
  type ProbeResult,
  type SnapshotCapability,
  type VmHandle,
  type VmSpec,
} from '@smolvm/driver-api';
import { findExecutable, type Supervision } from '@smolvm/driver-kit';
import {
  QEMU_WIRING,
  QemuVm,
  launchQemu,
  launchSaveable,
  restoreQemuVm,
  saveQemuVm,
  snapshotRunningQemuVm,
  recipeIn,
  type PrestartedQemu,
  type QemuTarget,
} from '@smolvm/qemu';
import { probeKvmDevice } from './kvm-device';
import { microvmTarget, type Accelerator } from './target';

export interface KvmDriverOptions {
  /** Default: SMOLVM_ACCEL (kvm|tcg), else auto (kvm when usable, else tcg with a warning). */
  accel?: Accelerator | 'auto';
  /** Default /dev/kvm; tests point it elsewhere to exercise the failure reasons. */
  kvmDevice?: string;
  qemuBinary?: string;
  /** No TCG warning. Default: SMOLVM_NO_TCG_WARNING=1. */
  quiet?: boolean;
  /** Where the TCG warning goes. Default: stderr. */
  warn?: (message: string) => void;
  env?: NodeJS.ProcessEnv;
  supervision?: Supervision;
}

export const KVM_DRIVER_NAME = 'kvm';
const QEMU_REMEDY = 'run tools/setup (installs qemu-system-x86)';

// Once per process, however many drivers or VMs: it is a fact about the host, not about a VM.
let tcgWarningShown = false;

export function createKvmDriver(options: KvmDriverOptions = {}): Driver {
  const env = options.env ?? process.env;
  const binary = options.qemuBinary ?? 'qemu-system-x86_64';
  let cached: Promise<ProbeResult> | undefined;

  const probe = (): Promise<ProbeResult> => (cached ??= computeProbe());

  async function computeProbe(): Promise<ProbeResult> {
    const requested = options.accel ?? parseAccelEnv(env.SMOLVM_ACCEL);
    if (requested instanceof Error)
      return unavailable(requested.message, 'set SMOLVM_ACCEL to kvm or tcg, or unset it');
    if (process.platform !== 'linux' || process.arch !== 'x64') {
      return unavailable(
        `the kvm driver runs x86-64 guests on Linux x86-64 hosts (this is ${process.platform}/${process.arch})`,
      );
    }
    if (!findExecutable(binary, env)) return unavailable(`${binary} not found`, QEMU_REMEDY);
    const kvm = await probeKvmDevice(options.kvmDevice);
    const features = { ...QEMU_WIRING, snapshot: true };
    if (requested === 'tcg') return { available: true, accelerator: 'tcg', features, guestCpu: guestCpu('tcg') };
    if (kvm.usable) return { available: true, accelerator: 'kvm', features, guestCpu: guestCpu('kvm') };
    if (requested === 'kvm')
      return { available: false, reason: `SMOLVM_ACCEL=kvm but ${kvm.reason}`, remedy: kvm.remedy };
    return {
      available: true,
      accelerator: 'tcg',
      guestCpu: guestCpu('tcg'),
      reason: `KVM is not usable (${kvm.reason}); VMs run under TCG software emulation, several times slower`,
      remedy: kvm.remedy,
      features,
    };
  }

  async function target(): Promise<QemuTarget> {
    const result = await probe();
    if (!result.available || (result.accelerator !== 'kvm' && result.accelerator !== 'tcg')) {
      throw new DriverUnavailableError(KVM_DRIVER_NAME, result.reason ?? 'probe failed', { remedy: result.remedy });
    }
    if (
      result.accelerator === 'tcg' &&
      result.reason &&
      !tcgWarningShown &&
      !(options.quiet ?? env.SMOLVM_NO_TCG_WARNING === '1')
    ) {
      tcgWarningShown = true;
      (options.warn ?? ((m: string) => process.stderr.write(m + '\n')))(
        `smolvm: warning: ${result.reason}. ${result.remedy ? `To use KVM: ${result.remedy}. ` : ''}Set SMOLVM_NO_TCG_WARNING=1 to hide this.`,
      );
    }
    return microvmTarget(result.accelerator, binary);
  }

  async function start(spec: VmSpec): Promise<VmHandle> {
    return launchQemu(spec, await target(), { env, supervision: options.supervision });
  }

  const snapshot: SnapshotCapability = {
    async fingerprint() {
      const t = await target();
      // The binary's identity stands in for its version (asking it costs a process); restore
      // still compares the exact version QEMU reports over QMP with the one that saved.
      const bin = findExecutable(t.binary, env);
      const st = bin ? fs.statSync(bin) : undefined;
      // With KVM the guest sees the host CPU: a snapshot holds CPU state only that CPU can resume.
      const cpu = t.accel === 'kvm' ? readCpuFlags().trim() : '';
      return JSON.stringify({
        driver: KVM_DRIVER_NAME,
        binary: bin,
        size: st?.size,
        mtimeMs: st?.mtimeMs,
        target: t,
        cpu,
      });
    },
    async startSaveable(spec, stateDir) {
      return launchSaveable(spec, await target(), stateDir, { env, supervision: options.supervision });
    },
    async save(handle, stateDir) {
      if (!(handle instanceof QemuVm)) throw new SnapshotError('cannot save a VM this driver did not start');
      await saveQemuVm(handle, stateDir);
    },
    async restore(spec, stateDir, restoreOptions) {
      const prestarted = restoreOptions?.prestarted;
      if (prestarted && !isPrestartedQemu(prestarted)) {
        prestarted.discard();
        throw new PrestartMismatchError(`a ${prestarted.kind} prestart is not a QEMU restore`);
      }
      return restoreQemuVm(spec, await target(), stateDir, {
        env,
        supervision: options.supervision,
        ...(prestarted ? { prestarted } : {}),
      });
    },
    restoreRecipe(handle, runDir) {
      const recipe = handle instanceof QemuVm ? handle.restoreRecipe : undefined;
      return recipe && recipeIn(recipe, runDir);
    },
    async snapshotRunning(handle, stateDir, whilePaused) {
      if (!(handle instanceof QemuVm)) throw new SnapshotError('cannot snapshot a VM this driver did not start');
      await snapshotRunningQemuVm(handle, stateDir, whilePaused, { env, supervision: options.supervision });
    },
  };

  return { name: KVM_DRIVER_NAME, probe, start, capabilities: { snapshot } };
}

function isPrestartedQemu(p: PrestartedRestore): p is PrestartedQemu {
  return p.kind === 'qemu-restore';
}

/**
 * The guest's CPU: TCG's `max` model or KVM's host CPU, named with the host CPU's features (TCG's
 * `max` follows them too). The accelerator alone when the host does not say.
 */
function guestCpu(accel: Accelerator): string {
  return `${KVM_DRIVER_NAME}-${accel}-${crypto.createHash('sha256').update(readCpuFlags()).digest('hex').slice(0, 12)}`;
}

/** The flags line of /proc/cpuinfo as it is ('' when there is none). */
function readCpuFlags(): string {
  try {
    return /^flags\s*:(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
  } catch {
    return '';
  }
}

function parseAccelEnv(value: string | undefined): Accelerator | 'auto' | Error {
  if (value === undefined || value === '' || value === 'auto') return 'auto';
  if (value === 'kvm' || value === 'tcg') return value;
  return new Error(`SMOLVM_ACCEL='${value}' is not kvm, tcg or auto`);
}

function unavailable(reason: string, remedy?: string): ProbeResult {
  return { available: false, reason, remedy };
}
