// The guest writes to its serial console as fast as it likes, into a file the hypervisor holds
// open; once the VM is up the file is unlinked (tmpfs or disk), so nothing else would ever free
// it. Only its tail is worth anything (crash messages, read by readLogTail), so the rest is
// punched out: the file keeps its size and the hypervisor its write offset, but the blocks before
// the tail are given back.
import fs from 'node:fs';
import { requireNative } from '@smolvm/sea';

/** Allocated bytes past which the log is trimmed. */
export const CONSOLE_LOG_MAX_BYTES = 1024 * 1024;
/** What a trim keeps: several times what readLogTail reads. */
export const CONSOLE_LOG_KEEP_BYTES = 64 * 1024;
const CHECK_INTERVAL_MS = 1000;

const FALLOC_FL_KEEP_SIZE = 0x01;
const FALLOC_FL_PUNCH_HOLE = 0x02;

type Fallocate = (fd: number, mode: number, offset: number, length: number) => number;
let fallocateFn: Fallocate | undefined;

// Loaded on the first trim: most VMs never write a megabyte to their console.
function fallocate(): Fallocate {
  if (!fallocateFn) {
    const koffi = requireNative<typeof import('koffi')>('koffi', __filename);
    const fn = koffi.load('libc.so.6').func('int fallocate(int fd, int mode, int64_t offset, int64_t len)');
    fallocateFn = (fd, mode, offset, length) => {
      const result: number = fn(fd, mode, offset, length);
      if (result < 0) throw Object.assign(new Error('fallocate failed'), { errno: koffi.errno() });
      return result;
    };
  }
  return fallocateFn;
}

/**
 * Frees all but the last `keepBytes` of the file open at `fd` (for writing: punching needs it) if
 * more than `maxBytes` of it are allocated. Returns false when the file system cannot punch holes
 * (nothing was changed).
 */
export function trimLog(fd: number, maxBytes = CONSOLE_LOG_MAX_BYTES, keepBytes = CONSOLE_LOG_KEEP_BYTES): boolean {
  const st = fs.fstatSync(fd);
  if (st.blocks * 512 <= maxBytes) return true;
  // Whole pages only: a partial one would be zeroed but stay allocated.
  const end = Math.floor(Math.max(0, st.size - keepBytes) / 4096) * 4096;
  if (end === 0) return true;
  try {
    fallocate()(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, end);
    return true;
  } catch {
    return false;
  }
}

/** Keeps the console log open at `fd` trimmed while the VM runs; `stop()` before closing `fd`. */
export function boundConsoleLog(fd: number): { stop(): void } {
  const timer = setInterval(() => {
    try {
      if (!trimLog(fd)) clearInterval(timer);
    } catch {
      // The descriptor went away with the VM.
      clearInterval(timer);
    }
  }, CHECK_INTERVAL_MS).unref();
  return { stop: () => clearInterval(timer) };
}
