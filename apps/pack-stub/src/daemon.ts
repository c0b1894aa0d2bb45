// The packed executable's daemon mode (`start`, `exec`, `stop`, `status`): a machine of
// libs/machines, named after the pack's digest, made from the pack on first start and supervised
// by this executable's hidden `_supervise` command; `smolvm machine ls` shows it too. As the
// reference says, /workspace persists across execs and stop/start, while the rest of the root
// resets per exec (each exec runs in a root of its own over the pack's).
import fs from 'node:fs';
import { NotFoundError, smolvmDirs } from '@smolvm/common';
import { Machines, MachineStartError, importPackedSnapshot } from '@smolvm/machines';
import type { MachineState } from '@smolvm/machine-store';
import type { PackFile } from '@smolvm/pack/local';
import { selfPath } from './payload';

export function daemonName(pack: PackFile): string {
  return `pack-${pack.manifestSha256.slice(0, 12)}`;
}

/** How to run this executable again as the supervisor: directly when it is executable, else through Node. */
function supervisorArgv(): string[] {
  const self = selfPath();
  try {
    fs.accessSync(self, fs.constants.X_OK);
    return [self, '_supervise'];
  } catch {
    return [process.execPath, self, '_supervise'];
  }
}

export function packMachines(): Machines {
  return new Machines({ supervisorArgv: supervisorArgv() });
}

export async function startDaemon(pack: PackFile, o: { quiet: boolean; program: string }): Promise<void> {
  const machines = packMachines();
  const name = daemonName(pack);
  if (!machines.store.exists(name) && pack.manifest.snapshot) {
    // A running machine resumes: imported as a snapshot (once per pack), the machine made from it.
    const id = await importPackedSnapshot(machines, pack, smolvmDirs().cache);
    await machines.createMachineFromSnapshot(name, id, {
      net: pack.manifest.network.net,
      allowHosts: pack.manifest.network.allow_hosts,
      allowCidrs: pack.manifest.network.allow_cidrs,
    });
  } else if (!machines.store.exists(name)) {
    const m = pack.manifest;
    await machines.createFromPack(
      {
        name,
        ...(m.image ? { image: m.image.reference, imageDigest: m.image.digest } : {}),
        cpus: m.cpus,
        memoryMiB: m.memory_mib,
        storageGiB: m.storage_gib,
        overlayGiB: m.overlay_gib,
        env: m.env,
        ...(m.workdir ? { workdir: m.workdir } : {}),
        ...(m.user ? { user: m.user } : {}),
        net: m.network.net,
        allowHosts: m.network.allow_hosts,
        allowCidrs: m.network.allow_cidrs,
      },
      pack,
      // The reference's daemon mode: /workspace is kept, each exec's other writes are not.
      { freshExecRoot: true },
    );
  }
  try {
    const result = await machines.start(name);
    if (!o.quiet)
      process.stderr.write(
        result.alreadyRunning
          ? `${o.program} is already running\n`
          : `${o.program} started (machine ${name}); run commands with \`${o.program} exec -- CMD\`\n`,
      );
  } catch (err) {
    if (err instanceof MachineStartError && err.detail.length > 0)
      process.stderr.write(err.detail.map((l) => `  | ${l}\n`).join(''));
    throw err;
  }
}

export async function stopDaemon(pack: PackFile, o: { quiet: boolean }): Promise<void> {
  const machines = packMachines();
  const name = daemonName(pack);
  if (!machines.store.exists(name) || !(await machines.stop(name))) {
    if (!o.quiet) process.stderr.write('not running\n');
  }
}

export interface DaemonStatus {
  machine: string;
  state: MachineState | 'not created';
}

/** The daemon's state; with `mustRun`, one that is not running is an error saying how to start it. */
export async function statusOfDaemon(name: string, program: string, mustRun: boolean): Promise<DaemonStatus> {
  const machines = packMachines();
  const state = machines.store.exists(name) ? (await machines.status(name)).state : 'not created';
  if (mustRun && state !== 'running')
    throw new NotFoundError(`${program} is not started (${state})`, { remedy: `start it with \`${program} start\`` });
  return { machine: name, state };
}
