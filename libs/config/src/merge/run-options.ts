// The reference's merge rules for `machine run` / `machine create`, step one: CLI flags over the
// Smolfile over defaults. Image metadata is applied separately (apply-image.ts) because it is
// only known after the image named here has been pulled.
import { UsageError } from '@smolvm/common';
import { DEFAULT_CPUS, DEFAULT_MEMORY_MIB, DEFAULT_OVERLAY_GIB, DEFAULT_STORAGE_GIB } from '../defaults';
import { mergeEnv, parseEnvFlag } from '../env';
import { parseGuestPath } from '../guest-path';
import { mergeByKey } from '../merge-by-key';
import { parsePort } from '../port';
import { parseImageReference } from '../reference';
import { parseCpus, parseDiskSize, parseMemory } from '../resources';
import type { Smolfile } from '../smolfile/types';
import { parseVolume } from '../volume';
import { mergeNetwork } from './network';
import type { CliRunOptions, MergedRunOptions } from './types';

function initCommands(commands: readonly string[]): string[] {
  for (const command of commands) {
    if (command.trim() === '')
      throw new UsageError('invalid init command "": it is empty', {
        remedy: 'pass a shell command, e.g. --init "apk add git"',
      });
  }
  return [...commands];
}

export function mergeRunOptions(cli: CliRunOptions, smolfile?: Smolfile): MergedRunOptions {
  const cwd = cli.cwd ?? process.cwd();
  const imageText = cli.image ?? smolfile?.image;
  const workdir =
    cli.workdir !== undefined
      ? parseGuestPath(cli.workdir, 'workdir', { allowRoot: true })
      : (smolfile?.dev.workdir ?? smolfile?.workdir);
  const cliCommand = cli.command !== undefined && cli.command.length > 0 ? [...cli.command] : undefined;
  const merged: MergedRunOptions = {
    env: mergeEnv(
      smolfile?.env ?? [],
      smolfile?.dev.env ?? [],
      (cli.env ?? []).map((e) => parseEnvFlag(e, cli.hostEnv)),
    ),
    cpus: cli.cpus !== undefined ? parseCpus(cli.cpus) : (smolfile?.cpus ?? DEFAULT_CPUS),
    memoryMib: cli.memory !== undefined ? parseMemory(cli.memory) : (smolfile?.memoryMib ?? DEFAULT_MEMORY_MIB),
    storageGib: cli.storage !== undefined ? parseDiskSize(cli.storage) : (smolfile?.storageGib ?? DEFAULT_STORAGE_GIB),
    overlayGib: cli.overlay !== undefined ? parseDiskSize(cli.overlay) : (smolfile?.overlayGib ?? DEFAULT_OVERLAY_GIB),
    network: mergeNetwork(cli, smolfile),
    sshAgent: cli.sshAgent === true || smolfile?.auth.sshAgent === true,
    // A guest path can hold one mount and a host port one listener, so a later entry for the
    // same target (CLI over Smolfile) replaces the earlier one instead of conflicting at boot.
    volumes: mergeByKey(
      [smolfile?.dev.volumes ?? [], (cli.volumes ?? []).map((v) => parseVolume(v, cwd))],
      (v) => v.guestPath,
    ),
    ports: mergeByKey([smolfile?.dev.ports ?? [], (cli.ports ?? []).map(parsePort)], (p) => p.hostPort),
    init: [...(smolfile?.dev.init ?? []), ...initCommands(cli.init ?? [])],
  };
  if (imageText !== undefined) merged.image = parseImageReference(imageText);
  if (smolfile?.entrypoint !== undefined) merged.entrypoint = [...smolfile.entrypoint];
  const cmd = cliCommand ?? smolfile?.cmd;
  if (cmd !== undefined) merged.cmd = [...cmd];
  if (workdir !== undefined) merged.workdir = workdir;
  if (smolfile?.health !== undefined) merged.health = smolfile.health;
  return merged;
}
