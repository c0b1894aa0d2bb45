// The CLI's handle on persistent machines: the supervisor is this same CLI, run detached with
// the hidden `machine _supervise` command.
import { SmolvmError } from '@smolvm/common';
import { parseImageReference, formatReference } from '@smolvm/config';
import { Machines } from '@smolvm/machines';
import type { MachineRecord } from '@smolvm/machine-store';
import { selfCommand } from '../../self';
import type { PreparedImage } from '@smolvm/oci';
import { pullWithProgress } from '../image/pull-progress';
import { builtBaseOptions } from './base-image';

/** `env` is added to the supervisor's environment (run -d --driver as SMOLVM_DRIVER). */
export function cliMachines(env: NodeJS.ProcessEnv = {}): Machines {
  return new Machines({ supervisorArgv: [...selfCommand(), 'machine', '_supervise'], env: { ...process.env, ...env } });
}

/**
 * The erofs of exactly the image the machine was created from: its overlay disk only makes sense
 * on top of that image, so a tag that has moved since does not matter. A machine made from a
 * pack boots the pack's own image (its supervisor finds it): none here.
 */
export async function machineImageErofs(record: MachineRecord, quiet: boolean): Promise<string | undefined> {
  if (record.from) return undefined;
  return (await machineImage(record, quiet))?.erofsPath;
}

/** The prepared image (erofs and config) of exactly the image the machine was created from. */
export async function machineImage(record: MachineRecord, quiet: boolean): Promise<PreparedImage | undefined> {
  if (!record.image) return undefined;
  const digest = record.imageDigest;
  if (!digest) return pullWithProgress(record.image, { quiet, pull: 'missing' });
  // Imported here: most commands that reach cliMachines (ls, exec, stop...) never touch images.
  const { ImageService, ensureBuiltBase, isBuiltBaseReference } = await import('@smolvm/oci');
  const service = new ImageService();
  let local;
  try {
    local = service.find(digest)[0];
    // A bare machine's base, removed from this store (or another SMOLVM_HOME): imported again from the set-up's build
    // (or the single file's).
    if (!local && isBuiltBaseReference(record.image)) {
      await ensureBuiltBase(service.store, process.env, builtBaseOptions()).catch(() => undefined);
      local = service.find(digest)[0];
      if (!local) {
        throw new SmolvmError(`the base image machine "${record.name}" was created from (${record.image}, ${digest}) is no longer on this host`, {
          remedy: 'create the machine again to use the current base (its overlay only fits the base it was made on)',
        });
      }
    }
    if (local) return await service.prepare(local.reference, { pull: 'never' });
  } finally {
    await service.close();
  }
  const ref = parseImageReference(record.image);
  const prepared = await pullWithProgress(formatReference({ registry: ref.registry, repository: ref.repository, digest }), { quiet, pull: 'missing' });
  if (prepared.manifestDigest !== digest) {
    throw new SmolvmError(`image ${record.image} resolved to ${prepared.manifestDigest}, not the ${digest} machine "${record.name}" was created from`, {
      remedy: 'create the machine again to use the current image',
    });
  }
  return prepared;
}
