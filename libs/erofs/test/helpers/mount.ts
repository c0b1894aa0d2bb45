// Whether this machine lets the tests loop-mount erofs images (root, erofs in the kernel); the mount
// tests skip themselves otherwise.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tempDir } from './tools';

export function canMount(): boolean {
  if (process.getuid?.() !== 0 || !fs.readFileSync('/proc/filesystems', 'utf8').includes('erofs')) return false;
  const dir = tempDir('erofs-probe-');
  try {
    const img = path.join(dir, 'probe.erofs');
    execFileSync('mkfs.erofs', ['--quiet', img, dir], { stdio: 'ignore' });
    fs.mkdirSync(path.join(dir, 'm'));
    const r = spawnSync('mount', ['-t', 'erofs', '-o', 'loop,ro', img, path.join(dir, 'm')], {
      stdio: 'ignore',
      timeout: 20000,
    });
    if (r.status !== 0) return false;
    spawnSync('umount', [path.join(dir, 'm')]);
    return true;
  } catch {
    return false;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** erofs multi-device images (the device table, `-o device=`) need Linux 5.16 or later. */
export function kernelHasErofsDevices(): boolean {
  const [major, minor] = os
    .release()
    .split('.')
    .map((n) => Number.parseInt(n, 10));
  return major > 5 || (major === 5 && minor >= 16);
}
