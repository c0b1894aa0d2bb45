// The agent image's userland: one statically linked busybox and a symlink per applet. Static,
// because the bare VM's commands must run without any of the host's libraries.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { NotFoundError } from '@smolvm/common';
import { readElf } from './elf';

const CANDIDATES = ['/bin/busybox', '/usr/bin/busybox', '/usr/local/bin/busybox', '/sbin/busybox'];

export function findStaticBusybox(explicit?: string): string {
  const candidates = explicit ? [explicit] : CANDIDATES;
  for (const candidate of candidates) {
    if (!fs.existsSync(candidate)) continue;
    const elf = readElf(fs.realpathSync(candidate));
    if (elf && elf.interpreter === null && elf.needed.length === 0) return fs.realpathSync(candidate);
    if (explicit)
      throw new NotFoundError(`${explicit} is not a statically linked busybox`, {
        remedy: 'install busybox-static (Debian/Ubuntu: apt-get install busybox-static)',
      });
  }
  throw new NotFoundError('no statically linked busybox on this host (the agent image needs one)', {
    remedy: 'install busybox-static (Debian/Ubuntu: apt-get install busybox-static), or run tools/setup',
  });
}

/** Applet paths relative to the root, e.g. `bin/sh`, `usr/bin/awk`. */
export function busyboxApplets(busybox: string): string[] {
  const out = execFileSync(busybox, ['--list-full'], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((l) => l.trim().replace(/^\/+/, ''))
    .filter((l) => l && !l.includes('..') && l !== 'bin/busybox');
}
