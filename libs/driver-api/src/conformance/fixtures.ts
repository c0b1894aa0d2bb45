// Files the conformance suite boots: the project's guest kernel and two tiny busybox initramfs.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SmolvmError } from '@smolvm/common';
import { cpioNewc, type CpioEntry } from './cpio';
import { CONFORMANCE_INIT, PANIC_INIT } from './guest-init';

export interface ConformanceFixtures {
  kernel: string;
  /** Boots CONFORMANCE_INIT: the line-protocol stand-in agent. */
  initrd: string;
  /** Its init exits at once, so the guest kernel panics. */
  panicInitrd: string;
  /** Scratch space for disks, shares and sockets; short, because unix socket paths are. */
  workDir: string;
}

export interface FixtureOptions {
  /** Guest kernel; default SMOLVM_TEST_KERNEL, else `tools/kernel/build --print-path`. */
  kernel?: string;
  busybox?: string;
  env?: NodeJS.ProcessEnv;
}

/** Its message carries the remedy too: test runners print only the message. */
export class FixtureError extends SmolvmError {
  constructor(message: string, options: { remedy: string }) {
    super(`${message}: ${options.remedy}`, options);
  }
}

export function prepareConformanceFixtures(options: FixtureOptions = {}): ConformanceFixtures {
  const env = options.env ?? process.env;
  const kernel = options.kernel ?? env.SMOLVM_TEST_KERNEL ?? findBuiltKernel(env);
  const busybox = options.busybox ?? '/bin/busybox';
  if (!fs.existsSync(busybox)) {
    throw new FixtureError(`conformance fixtures need a static busybox at ${busybox}`, {
      remedy: 'run tools/setup (installs busybox-static)',
    });
  }
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-conf-'));
  const bb = fs.readFileSync(busybox);
  const initrd = path.join(workDir, 'conformance.cpio');
  const panicInitrd = path.join(workDir, 'panic.cpio');
  fs.writeFileSync(initrd, cpioNewc(guestTree(bb, CONFORMANCE_INIT)));
  fs.writeFileSync(panicInitrd, cpioNewc(guestTree(bb, PANIC_INIT)));
  return { kernel, initrd, panicInitrd, workDir };
}

function guestTree(busybox: Buffer, init: string): CpioEntry[] {
  return [
    ...['bin', 'dev', 'proc', 'sys', 'tmp', 'mnt'].map((d): CpioEntry => ({ kind: 'dir', path: d })),
    // The kernel opens /dev/console for init before anything could mount devtmpfs.
    { kind: 'chardev', path: 'dev/console', major: 5, minor: 1 },
    { kind: 'file', path: 'bin/busybox', data: busybox, mode: 0o755 },
    { kind: 'symlink', path: 'bin/sh', target: 'busybox' },
    { kind: 'file', path: 'init', data: init, mode: 0o755 },
  ];
}

const NO_KERNEL_REMEDY =
  'run tools/setup (it builds the guest kernel with tools/kernel/build), or set SMOLVM_TEST_KERNEL';

function findBuiltKernel(env: NodeJS.ProcessEnv): string {
  const root = findWorkspace(env);
  const script = root && path.join(root, 'tools/kernel/build');
  if (!script || !fs.existsSync(script)) {
    throw new FixtureError('cannot find tools/kernel/build to locate the guest kernel', { remedy: NO_KERNEL_REMEDY });
  }
  try {
    const out = execFileSync(script, ['--print-path'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env });
    const kernel = out.trim().split('\n').pop() ?? '';
    if (kernel && fs.existsSync(kernel)) return kernel;
  } catch {
    // --print-path exits 1 when the kernel is not built: reported below.
  }
  throw new FixtureError('the guest kernel is not built, so the driver conformance suite cannot boot a VM', {
    remedy: NO_KERNEL_REMEDY,
  });
}

function findWorkspace(env: NodeJS.ProcessEnv): string | undefined {
  if (env.SMOLVM_WORKSPACE) return env.SMOLVM_WORKSPACE;
  for (let dir = process.cwd(); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'tools/kernel/build'))) return dir;
    if (path.dirname(dir) === dir) return undefined;
  }
}
