import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function tempDir(prefix = 'smolvm-qemu-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

// Process checks are the driver kit's (its supervision tests use them too).
export { isRunning, waitUntil } from '../../driver-kit/test/helpers';

/** A paused QEMU (no kernel needed) with a QMP server socket, for QMP tests. */
export function startPausedQemu(qmpSocket: string, extra: string[] = []): ChildProcess {
  return spawn(
    'qemu-system-x86_64',
    [
      '-M',
      'microvm,acpi=off',
      '-accel',
      'tcg',
      '-nodefaults',
      '-no-user-config',
      '-display',
      'none',
      '-S',
      '-chardev',
      `socket,id=qmp,path=${qmpSocket},server=on,wait=off`,
      '-mon',
      'chardev=qmp,mode=control',
      ...extra,
    ],
    { stdio: 'ignore' },
  );
}
