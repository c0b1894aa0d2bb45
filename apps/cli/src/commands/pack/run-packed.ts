// Running a packed machine once (`smolvm pack run`, and the packed executable's `run`): the pack's
// kernel, agent and image, its command (or the one given), restored from the boot snapshot of its
// shape like `machine run`, with the user's stdio; nothing is kept. A pack of a running machine
// resumes instead (run-snapshot.ts).
import { UsageError, smolvmDirs } from '@smolvm/common';
import path from 'node:path';
import type { Machines } from '@smolvm/machines';
import { packedBoot, packedWorkload, type PackFile, type PackedWorkload } from '@smolvm/pack/local';
import { createRunDir, startVm, type StartVmOptions } from '@smolvm/runtime';
import { runSession, ttyOptions } from '../../output/session';
import { writeRunTimings } from '../../output/timings';
import { keepRecipe, takePrestarted } from '../../prestart';
import { execOrExitCode } from '../machine/exec.handler';
import type { SnapshotRunOptions } from './run-snapshot';

// The machines library is loaded only by the packs that need it (a running machine's, or one with
// disks): a plain packed run does not evaluate it.
export interface PackedRunOptions extends SnapshotRunOptions {
  /** The persistent machines a pack of a running machine resumes as (the CLI's, or the packed executable's). */
  machines: () => Machines | Promise<Machines>;
  /** How to name the program in messages (smolvm pack run, or ./my-app). */
  program: string;
  /** Executables besides the pack's own that may hold its runtime (the CLI's stub: same build, same Node). */
  runtimeCandidates?: string[];
  /**
   * The packed executable's key for early-start recipes (pack-stub early-run.ts): the restore its
   * loader began is taken over, and this run's recipe kept for the next identical one.
   */
  recipeKey?: string;
}

export async function runPacked(pack: PackFile, o: PackedRunOptions): Promise<number> {
  if (o.tty && o.interactive && !process.stdin.isTTY) {
    throw new UsageError('-it needs a terminal on stdin, and stdin is not one', {
      remedy: 'drop -t to pipe data in with -i, or run from a terminal',
    });
  }
  if (pack.manifest.snapshot) {
    const { runPackedSnapshot } = await import('./run-snapshot');
    return runPackedSnapshot(pack, await o.machines(), o);
  }
  const w = packedWorkload(pack.manifest, o.command);
  const argv = w.argv.length > 0 ? w.argv : pack.manifest.image ? [] : ['/bin/sh'];
  if (argv.length === 0)
    throw new UsageError('the pack defines no command', {
      remedy: `name one after --, e.g. ${o.program} run -- /bin/sh`,
    });
  const cacheDir = smolvmDirs().cache;
  const boot = await packedBoot(pack, cacheDir, o.runtimeCandidates ?? []);
  // A pack made with --from-vm brings its machine's disks: this run gets copies, gone after it.
  const scratch = pack.section('overlay') ? createRunDir('pack') : undefined;
  try {
    const persistent = scratch
      ? { overlayDisk: path.join(scratch.path, 'overlay.ext4'), storageDisk: path.join(scratch.path, 'storage.ext4') }
      : undefined;
    if (persistent) {
      const { writePackDisks } = await import('@smolvm/machines');
      const sizes = { overlayGiB: pack.manifest.overlay_gib, storageGiB: pack.manifest.storage_gib };
      await writePackDisks(pack, persistent, sizes, cacheDir);
    }
    return await runVm(o, w, argv, { ...boot, ...(persistent ? { persistent } : {}) });
  } finally {
    scratch?.remove();
  }
}

async function runVm(
  o: PackedRunOptions,
  w: PackedWorkload,
  argv: string[],
  boot: Partial<StartVmOptions>,
): Promise<number> {
  // Taken only after packedBoot verified the pack: a recipe is found only for the pack as this
  // process found it at its start, and a pack that fails verification ends the early start unused.
  const early = o.recipeKey !== undefined ? takePrestarted() : undefined;
  const note = (message: string) => process.stderr.write(`smolvm: note: ${message}\n`);
  const vmStart = performance.now();
  let commandDone: number | undefined;
  const vm = await startVm({
    cpus: w.cpus,
    memoryMiB: w.memoryMiB,
    ...boot,
    ...(w.network.net
      ? { network: { outbound: true, allowHosts: w.network.allowHosts, allowCidrs: w.network.allowCidrs, ports: [] } }
      : {}),
    bootSnapshot: o.cold !== true,
    ...(o.debug ? { onNote: note } : {}),
    ...(early ? { prestarted: early } : {}),
  });
  if (o.debug && vm.timings.prestartLead !== undefined)
    note(`the restore began before ${o.program} had loaded (${vm.timings.prestartLead} ms ahead)`);
  if (o.recipeKey !== undefined && vm.restoreRecipe)
    keepRecipe(process.argv.slice(2), smolvmDirs().cache, o.recipeKey, vm.restoreRecipe);
  try {
    const session = await execOrExitCode(vm, {
      argv,
      env: w.env,
      ...(w.workdir ? { cwd: w.workdir } : {}),
      ...(w.user ? { user: w.user } : {}),
      stdin: o.interactive,
      ...ttyOptions(o.tty),
    });
    if (typeof session === 'number') return session;
    const code = await runSession(session, { interactive: o.interactive, tty: o.tty, onTerminate: () => vm.kill() });
    commandDone = performance.now();
    return code;
  } finally {
    await vm.dispose();
    writeRunTimings(vm, vmStart, commandDone);
  }
}
