// The CLI's handle on persistent machines: the supervisor is this same CLI, run detached with
// the hidden `machine _supervise` command.
import { Machines, pinnedImage } from '@smolvm/machines';
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
export function machineImage(record: MachineRecord, quiet: boolean): Promise<PreparedImage | undefined> {
  return pinnedImage(record, (ref) => pullWithProgress(ref, { quiet, pull: 'missing' }), {
    builtBase: builtBaseOptions(),
  });
}
