// The container's rootfs: the mounts containerd's snapshotter returned (an overlay, or a bind of
// a plain directory), mounted at <bundle>/rootfs like runc's shim does, then shared into the VM.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { SmolvmError } from '@smolvm/common';

const run = promisify(execFile);

/** containerd.types.Mount as decoded. */
export interface Mount {
  type: string;
  source: string;
  target?: string;
  options: string[];
}

/** Mounts them in order on `target`; on failure nothing stays mounted. */
export async function mountRootfs(mounts: Mount[], target: string): Promise<void> {
  fs.mkdirSync(target, { recursive: true, mode: 0o711 });
  let done = 0;
  try {
    for (const m of mounts) {
      // A bind mount is spelled as an option for mount(8): -t bind is not a filesystem.
      const bind = m.type === 'bind' || m.options.includes('bind') || m.options.includes('rbind');
      const args = bind
        ? ['--bind', ...optionArgs(m.options.filter((o) => o !== 'bind' && o !== 'rbind')), m.source, target]
        : ['-t', m.type, ...optionArgs(m.options), m.source, target];
      await run('mount', args);
      done++;
    }
  } catch (err) {
    for (; done > 0; done--) await unmountRootfs(target);
    throw new SmolvmError(
      `could not mount the container rootfs at ${target}: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`,
      {
        remedy: "check that containerd's snapshotter (overlayfs or native) works here: ctr run with runc should too",
      },
    );
  }
}

function optionArgs(options: string[]): string[] {
  return options.length > 0 ? ['-o', options.join(',')] : [];
}

/** Unmounts the rootfs (lazily if busy); a rootfs that is not mounted is fine. */
export async function unmountRootfs(target: string): Promise<void> {
  try {
    await run('umount', [target]);
  } catch {
    await run('umount', ['-l', target]).catch(() => undefined);
  }
}
