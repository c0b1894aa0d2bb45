// The CLI's handle on persistent machines: the supervisor is this same CLI, run detached with
// the hidden `machine _supervise` command.
import path from 'node:path';
import { Machines, pinnedImage } from '@smolvm/machines';
import type { MachineRecord } from '@smolvm/machine-store';
import { pullWithProgress } from '../image/pull-progress';

/** `env` is added to the supervisor's environment (run -d --driver as SMOLVM_DRIVER). */
export function cliMachines(env: NodeJS.ProcessEnv = {}): Machines {
  return new Machines({ supervisorArgv: [process.execPath, path.resolve(process.argv[1]), 'machine', '_supervise'], env: { ...process.env, ...env } });
}

/** The erofs of exactly the image the machine was created from (pulled by digest if it left the store). */
export async function machineImageErofs(record: MachineRecord, quiet: boolean): Promise<string | undefined> {
  return (await pinnedImage(record, (ref) => pullWithProgress(ref, { quiet, pull: 'missing' })))?.erofsPath;
}
