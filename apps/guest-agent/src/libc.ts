// The few libc calls Node does not offer, through koffi. Bound once, before the agent chroots
// into the guest root: after that, libc.so.6 may not exist at the same path (or at all).
import os from 'node:os';
import type * as Koffi from 'koffi';
import { requireNative } from './native';

export interface Winsize {
  ws_row: number;
  ws_col: number;
  ws_xpixel: number;
  ws_ypixel: number;
}

type Fn<A extends unknown[], R = number> = (...args: A) => R;

export interface Libc {
  errno(): number;
  openpty: Fn<[number[], number[], null, null, Winsize]>;
  ioctlWinsize: Fn<[number, number, Winsize]>;
  /** ioctl with a byte buffer (or no argument: null). */
  ioctlBuffer: Fn<[number, number, Buffer | null]>;
  fcntl: Fn<[number, number, number]>;
  socket: Fn<[number, number, number]>;
  fchown: Fn<[number, number, number]>;
  tcgetpgrp: Fn<[number]>;
  close: Fn<[number]>;
  mount: Fn<[string | null, string, string | null, number, string | null]>;
  umount2: Fn<[string, number]>;
  chroot: Fn<[string]>;
  fchdir: Fn<[number]>;
  sethostname: Fn<[string, number]>;
  clockSettime: Fn<[number, { tv_sec: number; tv_nsec: number }]>;
  sync: Fn<[], void>;
  reboot: Fn<[number]>;
}

let cached: Libc | null = null;

export function libc(): Libc {
  if (cached) return cached;
  const koffi = requireNative<typeof Koffi>('koffi');
  const lib = koffi.load('libc.so.6');
  // koffi's type names are process-wide, and a module may be loaded twice in one process (jest
  // gives each test file its own registry): an existing definition is the same one.
  const struct = (name: string, fields: Record<string, string>) => {
    try {
      koffi.struct(name, fields);
    } catch (err) {
      if (!/Duplicate type name/.test((err as Error).message)) throw err;
    }
  };
  struct('winsize', { ws_row: 'uint16', ws_col: 'uint16', ws_xpixel: 'uint16', ws_ypixel: 'uint16' });
  struct('timespec', { tv_sec: 'int64', tv_nsec: 'int64' });
  cached = {
    errno: () => koffi.errno(),
    openpty: lib.func(
      'int openpty(_Out_ int *amaster, _Out_ int *aslave, char *name, void *termp, const winsize *winp)',
    ),
    // ioctl is variadic; on x86-64 a fixed prototype passes a pointer argument identically.
    ioctlWinsize: lib.func('int ioctl(int fd, unsigned long request, const winsize *ws)'),
    ioctlBuffer: lib.func('int ioctl(int fd, unsigned long request, _Inout_ uint8_t *arg)'),
    fcntl: lib.func('int fcntl(int fd, int cmd, int arg)'),
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    fchown: lib.func('int fchown(int fd, uint32_t owner, uint32_t group)'),
    tcgetpgrp: lib.func('int tcgetpgrp(int fd)'),
    close: lib.func('int close(int fd)'),
    mount: lib.func(
      'int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)',
    ),
    umount2: lib.func('int umount2(const char *target, int flags)'),
    chroot: lib.func('int chroot(const char *path)'),
    fchdir: lib.func('int fchdir(int fd)'),
    sethostname: lib.func('int sethostname(const char *name, size_t len)'),
    clockSettime: lib.func('int clock_settime(int clk, const timespec *ts)'),
    sync: lib.func('void sync()'),
    reboot: lib.func('int reboot(int cmd)'),
  } as Libc;
  return cached;
}

/** Throws an Error carrying errno's name when a libc call returned -1. */
export function check(result: number, what: string): number {
  if (result !== -1) return result;
  const errno = libc().errno();
  const err = new Error(`${what}: ${errnoName(errno)}`) as NodeJS.ErrnoException;
  err.errno = errno;
  err.code = errnoName(errno);
  throw err;
}

export function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(os.constants.errno)) if (value === errno) return name;
  return `errno ${errno}`;
}
