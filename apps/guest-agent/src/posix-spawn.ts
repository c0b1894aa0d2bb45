// exec without fork: posix_spawn through koffi. glibc implements it with clone(CLONE_VM |
// CLONE_VFORK), so the child borrows the agent's memory until it execs. libuv, as Node 20
// ships it, forks the whole agent for every exec instead: it copies node's page tables, the child
// tears that copy down again when it execs, and the agent then takes a copy-on-write fault on
// every page it writes. In a VM restored from a boot snapshot under TCG, all of those kernel paths
// are translated again. The first exec of a warm `machine run -- true` took 207 ms through libuv
// and takes 132 ms this way; the whole run went from 523 to 417 ms (medians of 20).
//
// Used where it can do everything the request asks for: pipes (no terminal) and the agent's own
// user (posix_spawn cannot switch uid/gid). Everything else, and any host whose libc lacks a
// function used here, takes Node's spawn (exec-pipes.ts).
import net from 'node:net';
import os from 'node:os';
import type * as Koffi from 'koffi';
import type { ExitStatus } from '@smolvm/agent-protocol';
import { errnoName } from './libc';
import { requireNative } from './native';

type Fn<A extends unknown[], R = number> = (...args: A) => R;

interface SpawnLibc {
  pipe2: Fn<[number[], number]>;
  close: Fn<[number]>;
  faInit: Fn<[Buffer]>;
  faDestroy: Fn<[Buffer]>;
  faAddDup2: Fn<[Buffer, number, number]>;
  faAddOpen: Fn<[Buffer, number, string, number, number]>;
  faAddChdir: Fn<[Buffer, string]>;
  attrInit: Fn<[Buffer]>;
  attrDestroy: Fn<[Buffer]>;
  attrSetFlags: Fn<[Buffer, number]>;
  attrSetSigMask: Fn<[Buffer, Buffer]>;
  attrSetSigDefault: Fn<[Buffer, Buffer]>;
  posixSpawn: Fn<[number[], string, Buffer, Buffer, (string | null)[], (string | null)[]]>;
  waitpid: Fn<[number, number[], number]>;
}

// <fcntl.h>, <spawn.h>, <sys/wait.h> (Linux, glibc).
const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const WNOHANG = 1;
// Opaque glibc types, given more room than they take (80, 336 and 128 bytes on x86-64 and arm64).
const FILE_ACTIONS_BYTES = 256;
const ATTR_BYTES = 512;
const SIGSET_BYTES = 128;
/** A safety net under SIGCHLD: reaps what a lost or coalesced signal would leave waiting. */
const REAP_POLL_MS = 100;

let bound: SpawnLibc | null | undefined;

function spawnLibc(): SpawnLibc | null {
  if (bound !== undefined) return bound;
  try {
    const koffi = requireNative<typeof Koffi>('koffi');
    const lib = koffi.load('libc.so.6');
    bound = {
      pipe2: lib.func('int pipe2(_Out_ int *fds, int flags)'),
      close: lib.func('int close(int fd)'),
      faInit: lib.func('int posix_spawn_file_actions_init(_Inout_ uint8_t *fa)'),
      faDestroy: lib.func('int posix_spawn_file_actions_destroy(_Inout_ uint8_t *fa)'),
      faAddDup2: lib.func('int posix_spawn_file_actions_adddup2(_Inout_ uint8_t *fa, int fd, int newfd)'),
      faAddOpen: lib.func(
        'int posix_spawn_file_actions_addopen(_Inout_ uint8_t *fa, int fd, const char *path, int oflag, uint32_t mode)',
      ),
      faAddChdir: lib.func('int posix_spawn_file_actions_addchdir_np(_Inout_ uint8_t *fa, const char *path)'),
      attrInit: lib.func('int posix_spawnattr_init(_Inout_ uint8_t *attr)'),
      attrDestroy: lib.func('int posix_spawnattr_destroy(_Inout_ uint8_t *attr)'),
      attrSetFlags: lib.func('int posix_spawnattr_setflags(_Inout_ uint8_t *attr, short flags)'),
      attrSetSigMask: lib.func('int posix_spawnattr_setsigmask(_Inout_ uint8_t *attr, const uint8_t *mask)'),
      attrSetSigDefault: lib.func('int posix_spawnattr_setsigdefault(_Inout_ uint8_t *attr, const uint8_t *set)'),
      posixSpawn: lib.func(
        'int posix_spawn(_Out_ int *pid, const char *path, const uint8_t *fa, const uint8_t *attr, const char **argv, const char **envp)',
      ),
      waitpid: lib.func('int waitpid(int pid, _Out_ int *status, int options)'),
    } as SpawnLibc;
  } catch {
    bound = null;
  }
  return bound;
}

/** Binds the functions now (the agent does it before it chroots: libc.so.6 may not be there after). */
export function posixSpawnAvailable(): boolean {
  return process.platform === 'linux' && spawnLibc() !== null;
}

export interface SpawnedProcess {
  pid: number;
  stdin: net.Socket | null;
  stdout: net.Socket;
  stderr: net.Socket;
  exited: Promise<ExitStatus>;
  /** Sends `signal` unless the process has been reaped (its pid may belong to another by then). */
  kill(signal: NodeJS.Signals): void;
}

export interface SpawnCommand {
  file: string;
  argv: string[];
  env: Record<string, string>;
  cwd: string;
}

/** A spawn that failed (errno name in `code`, like Node's spawn errors). */
function spawnFailure(errno: number, file: string): NodeJS.ErrnoException {
  const name = errnoName(errno);
  return Object.assign(new Error(`spawn ${file} ${name}`), { code: name, errno: -errno });
}

/**
 * Starts `cmd` with pipes for stdout and stderr, and for stdin when asked (/dev/null otherwise).
 * The child gets default signal dispositions and an empty signal mask, in the agent's process
 * group. Throws like Node's spawn (ENOENT, EACCES...); nothing is left open then.
 */
export function spawnPiped(cmd: SpawnCommand, withStdin: boolean): SpawnedProcess {
  const c = spawnLibc();
  if (!c) throw new Error('posix_spawn is not available');
  const pipes: number[][] = [];
  const pipe = () => {
    const fds = [0, 0];
    if (c.pipe2(fds, O_CLOEXEC) !== 0) throw spawnFailure(os.constants.errno.EMFILE, cmd.file);
    pipes.push(fds);
    return fds;
  };
  const fa = Buffer.alloc(FILE_ACTIONS_BYTES);
  const attr = Buffer.alloc(ATTR_BYTES);
  c.faInit(fa);
  c.attrInit(attr);
  let pid: number;
  const ours: number[] = [];
  try {
    const input = withStdin ? pipe() : null;
    const out = pipe();
    const err = pipe();
    if (input) c.faAddDup2(fa, input[0], 0);
    else c.faAddOpen(fa, 0, '/dev/null', O_RDONLY, 0);
    c.faAddDup2(fa, out[1], 1);
    c.faAddDup2(fa, err[1], 2);
    c.faAddChdir(fa, cmd.cwd);
    c.attrSetSigMask(attr, Buffer.alloc(SIGSET_BYTES));
    c.attrSetSigDefault(attr, Buffer.alloc(SIGSET_BYTES, 0xff));
    c.attrSetFlags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    const pidOut = [0];
    const env = Object.entries(cmd.env).map(([k, v]) => `${k}=${v}`);
    const rc = c.posixSpawn(pidOut, cmd.file, fa, attr, [...cmd.argv, null], [...env, null]);
    if (rc !== 0) throw spawnFailure(rc, cmd.file);
    pid = pidOut[0];
    // The child's ends are its own now; ours stay (O_CLOEXEC keeps them out of later children).
    if (input) ours.push(input[1]);
    ours.push(out[0], err[0]);
    for (const fd of [input?.[0], out[1], err[1]]) if (fd !== undefined) c.close(fd);
  } catch (e) {
    for (const fds of pipes) for (const fd of fds) c.close(fd);
    throw e;
  } finally {
    c.faDestroy(fa);
    c.attrDestroy(attr);
  }
  const [inFd, outFd, errFd] = withStdin ? ours : [undefined, ...ours];
  const stdin = inFd === undefined ? null : new net.Socket({ fd: inFd, readable: false, writable: true });
  const stdout = new net.Socket({ fd: outFd, readable: true, writable: false });
  const stderr = new net.Socket({ fd: errFd, readable: true, writable: false });
  let reaped = false;
  const exited = new Promise<ExitStatus>((resolve) =>
    watch(pid, (status) => {
      reaped = true;
      resolve(status);
    }),
  );
  // Output ending usually means the process is gone: look now rather than at the next signal.
  stdout.once('close', reapAll);
  stderr.once('close', reapAll);
  return {
    pid,
    stdin,
    stdout,
    stderr,
    exited,
    kill(signal) {
      if (!reaped) process.kill(pid, signal);
    },
  };
}

const waiting = new Map<number, (status: ExitStatus) => void>();
let listening = false;
let poll: NodeJS.Timeout | null = null;

function watch(pid: number, done: (status: ExitStatus) => void): void {
  waiting.set(pid, done);
  if (!listening) {
    listening = true;
    process.on('SIGCHLD', reapAll);
  }
  poll ??= setInterval(reapAll, REAP_POLL_MS);
  // It may have exited already.
  reapAll();
}

/** Reaps our own children only (libuv reaps its own by pid too): never waitpid(-1). */
function reapAll(): void {
  const c = spawnLibc();
  if (!c) return;
  for (const [pid, done] of waiting) {
    const status = [0];
    if (c.waitpid(pid, status, WNOHANG) !== pid) continue;
    waiting.delete(pid);
    done(decodeStatus(status[0]));
  }
  if (waiting.size === 0 && poll) {
    clearInterval(poll);
    poll = null;
  }
}

/** A wait status: exited with a code, or killed by a signal (WIFEXITED / WTERMSIG). */
export function decodeStatus(status: number): ExitStatus {
  const signal = status & 0x7f;
  if (signal === 0) return { code: (status >> 8) & 0xff, signal: null };
  const name = Object.entries(os.constants.signals).find(([, n]) => n === signal)?.[0];
  return { code: null, signal: name ?? `SIG${signal}` };
}
