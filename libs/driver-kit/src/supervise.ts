// A hypervisor must never outlive the process that started it, even when that process is
// SIGKILLed (a crashed CLI must not leave a VM running and holding its disks).
//
// 'pdeathsig' (Linux): the hypervisor is started through util-linux `setpriv --pdeathsig KILL`,
// which sets PR_SET_PDEATHSIG and then execs it, so it keeps its pid and the kernel itself sends
// it SIGKILL the moment its parent dies. Nothing to run, nothing that can fail later. The signal
// follows the parent *thread*: spawn from the main thread (Node's child_process does).
//
// 'watchdog' (elsewhere, e.g. macOS): a tiny Node process holds a pipe from us; when the pipe
// reaches EOF (we died, however) it SIGKILLs the hypervisor and exits. We stop it when the
// hypervisor exits.
import fs from 'node:fs';
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { findExecutable } from './executable';

export type Supervision = 'pdeathsig' | 'watchdog';

export interface SupervisedProcess {
  child: ChildProcess;
  supervision: Supervision;
  /** Stops the watchdog (if any). Call once the child has exited. */
  release(): void;
}

export interface SuperviseOptions {
  supervision?: Supervision;
  stdio?: StdioOptions;
  env?: NodeJS.ProcessEnv;
}

let pdeathsigUsable: boolean | undefined;

/**
 * pdeathsig when this host has setpriv with --pdeathsig (util-linux >= 2.33), else watchdog.
 * Told from the binary's option table rather than by running it: a probe process costs every
 * VM start ~10-20 ms, and an option setpriv does not know is not in its strings.
 */
export function defaultSupervision(): Supervision {
  if (pdeathsigUsable === undefined) {
    const setpriv = process.platform === 'linux' ? findExecutable('setpriv') : undefined;
    pdeathsigUsable = !!setpriv && binaryMentions(setpriv, 'pdeathsig');
  }
  return pdeathsigUsable ? 'pdeathsig' : 'watchdog';
}

function binaryMentions(file: string, text: string): boolean {
  try {
    return fs.readFileSync(file).includes(text);
  } catch {
    return false;
  }
}

/**
 * The process a pdeathsig-supervised `binary args` is: setpriv, which also takes from the
 * hypervisor what it never needs (dropPrivilegeArgs) and execs it.
 */
export function pdeathsigCommand(binary: string, args: readonly string[]): { file: string; args: string[] } {
  const setpriv = findExecutable('setpriv');
  if (!setpriv) throw new Error(`setpriv not found: cannot supervise ${binary} with pdeathsig`);
  return { file: setpriv, args: ['--pdeathsig', 'KILL', ...dropPrivilegeArgs(), '--', binary, ...args] };
}

const CAP_SETPCAP = 8n;
let dropArgs: string[] | undefined;

/**
 * setpriv options for a hypervisor: no new privileges ever (no setuid binary, no file
 * capability), and, when we may (CAP_SETPCAP, i.e. root), an empty bounding and inheritable set,
 * so that one started by root holds no capability at all: no DAC override, chown, mknod, raw I/O
 * or mount.
 * It keeps uid 0, so it can still write what root owns by its permission bits. Dropping
 * capabilities keeps the parent-death signal (the kernel clears it only when privileges grow).
 */
export function dropPrivilegeArgs(): string[] {
  dropArgs ??= ['--no-new-privs', ...(hasCapability(CAP_SETPCAP) ? ['--inh-caps=-all', '--bounding-set=-all'] : [])];
  return dropArgs;
}

function hasCapability(bit: bigint): boolean {
  try {
    const eff = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1];
    return eff !== undefined && ((BigInt(`0x${eff}`) >> bit) & 1n) === 1n;
  } catch {
    return false;
  }
}

/**
 * Spawns `binary args` directly (no shell) in its own session, so a Ctrl-C meant for the CLI
 * does not reach the hypervisor: ending the VM is the caller's decision.
 */
export function spawnSupervised(
  binary: string,
  args: readonly string[],
  options: SuperviseOptions = {},
): SupervisedProcess {
  const supervision = options.supervision ?? defaultSupervision();
  const common = { stdio: options.stdio ?? 'ignore', env: options.env ?? process.env, detached: true } as const;
  if (supervision === 'pdeathsig') {
    const command = pdeathsigCommand(binary, args);
    const child = spawn(command.file, command.args, common);
    return { child, supervision, release: () => undefined };
  }
  const child = spawn(binary, [...args], common);
  if (child.pid === undefined) return { child, supervision, release: () => undefined };
  const watchdog = spawn(process.execPath, ['-e', WATCHDOG_SOURCE, String(child.pid)], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: true,
    env: {}, // no NODE_OPTIONS and friends: it must start plain and fast
  });
  watchdog.stdin?.on('error', () => undefined);
  return {
    child,
    supervision,
    release: () => {
      // SIGTERM ends it without its EOF handler running: the child is already gone, its pid may be reused.
      watchdog.kill('SIGTERM');
    },
  };
}

// Runs as `node -e WATCHDOG_SOURCE CHILD_PID` with our pipe as stdin.
const WATCHDOG_SOURCE = `
const pid = Number(process.argv[1]);
const end = () => { try { process.kill(pid, 'SIGKILL'); } catch {} process.exit(0); };
process.stdin.on('end', end);
process.stdin.on('error', end);
process.stdin.resume();
`;
