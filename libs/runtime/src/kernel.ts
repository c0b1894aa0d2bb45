// Which guest kernel to boot: SMOLVM_KERNEL, else the one tools/kernel/build recorded in the
// cache. The kernel is a per-host artifact, so a custom SMOLVM_HOME still finds the user's.
import fs from 'node:fs';
import path from 'node:path';
import { NotFoundError, assertTrustedPath, smolvmDirs } from '@smolvm/common';

const REMEDY =
  'run tools/setup from the smolvm checkout (it builds the guest kernel once), or point SMOLVM_KERNEL at a vmlinux';

/**
 * The kernel the cache's record names, if only this user can have written the record and the
 * kernel (every VM boots it, with the run's volumes and secrets): both inside the cache, owned
 * by this user, not writable by others, no symlinks on the way (assertTrustedPath).
 */
function recordedKernel(cacheDir: string): string | undefined {
  try {
    const file = path.join(cacheDir, 'kernel', 'kernel.json');
    assertTrustedPath(file, cacheDir);
    const record = JSON.parse(fs.readFileSync(file, 'utf8')) as { path?: unknown };
    if (typeof record.path !== 'string') return undefined;
    assertTrustedPath(record.path, cacheDir);
    return record.path;
  } catch {
    return undefined;
  }
}

/** `shipped`: the kernel a single-file smolvm carries; it comes after SMOLVM_KERNEL, before the recorded one. */
export function locateKernel(env: NodeJS.ProcessEnv = process.env, shipped?: string): string {
  const override = env.SMOLVM_KERNEL;
  if (override) {
    if (!fs.existsSync(override) || !fs.statSync(override).isFile()) {
      throw new NotFoundError(`SMOLVM_KERNEL points at ${override}, which is not a file`, {
        remedy: 'fix the path, or unset SMOLVM_KERNEL to use the built kernel',
      });
    }
    return path.resolve(override);
  }
  if (shipped) return shipped;
  const caches = [smolvmDirs(env).cache];
  if (env.SMOLVM_HOME) caches.push(smolvmDirs({ ...env, SMOLVM_HOME: undefined }).cache);
  for (const cache of caches) {
    const found = recordedKernel(cache);
    if (found) return found;
  }
  throw new NotFoundError(
    `no guest kernel is built (looked in ${caches.map((c) => path.join(c, 'kernel')).join(' and ')})`,
    { remedy: REMEDY },
  );
}
