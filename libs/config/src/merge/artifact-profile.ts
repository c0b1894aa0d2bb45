// `pack create`: the packed binary's defaults. [artifact] overrides the top level; [dev] is
// deliberately ignored because host paths, host ports and dev-only env make no sense once the
// machine is shipped to another computer.
import { DEFAULT_CPUS, DEFAULT_MEMORY_MIB, DEFAULT_OVERLAY_GIB, DEFAULT_STORAGE_GIB } from '../defaults';
import { mergeEnv } from '../env';
import { parsePlatform } from '../platform';
import { parseImageReference } from '../reference';
import { parseCpus, parseMemory } from '../resources';
import type { Smolfile } from '../smolfile/types';
import { mergeNetwork } from './network';
import type { ArtifactProfile, CliPackOptions } from './types';

export function resolveArtifactProfile(cli: CliPackOptions, smolfile?: Smolfile): ArtifactProfile {
  const profile: ArtifactProfile = {
    env: mergeEnv(smolfile?.env ?? []),
    cpus: cli.cpus !== undefined ? parseCpus(cli.cpus) : (smolfile?.artifact.cpus ?? smolfile?.cpus ?? DEFAULT_CPUS),
    memoryMib:
      cli.memory !== undefined
        ? parseMemory(cli.memory)
        : (smolfile?.artifact.memoryMib ?? smolfile?.memoryMib ?? DEFAULT_MEMORY_MIB),
    storageGib: smolfile?.storageGib ?? DEFAULT_STORAGE_GIB,
    overlayGib: smolfile?.overlayGib ?? DEFAULT_OVERLAY_GIB,
    network: mergeNetwork({}, smolfile),
    sshAgent: smolfile?.auth.sshAgent === true,
  };
  const imageText = cli.image ?? smolfile?.image;
  if (imageText !== undefined) profile.image = parseImageReference(imageText);
  const entrypoint = smolfile?.artifact.entrypoint ?? smolfile?.entrypoint;
  if (entrypoint !== undefined) profile.entrypoint = [...entrypoint];
  if (smolfile?.cmd !== undefined) profile.cmd = [...smolfile.cmd];
  if (smolfile?.workdir !== undefined) profile.workdir = smolfile.workdir;
  if (smolfile?.health !== undefined) profile.health = smolfile.health;
  const platform = cli.platform !== undefined ? parsePlatform(cli.platform) : smolfile?.artifact.platform;
  if (platform !== undefined) profile.platform = platform;
  return profile;
}
