import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function tempDir(prefix = 'smolvm-qemu-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** True while `pid` runs (a zombie waiting to be reaped does not count). */
export function isRunning(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export async function waitUntil(check: () => boolean, timeoutMs: number, stepMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
  return check();
}

/** A paused QEMU (no kernel needed) with a QMP server socket, for QMP tests. */
export function startPausedQemu(qmpSocket: string, extra: string[] = []): ChildProcess {
  return spawn(
    'qemu-system-x86_64',
    [
      '-M', 'microvm,acpi=off', '-accel', 'tcg', '-nodefaults', '-no-user-config', '-display', 'none', '-S',
      '-chardev', `socket,id=qmp,path=${qmpSocket},server=on,wait=off`, '-mon', 'chardev=qmp,mode=control',
      ...extra,
    ],
    { stdio: 'ignore' },
  );
}
