import type { EnvVar } from '../env';
import { mergeEnv } from '../env';
import type { Smolfile } from '../smolfile/types';
import { mergeRunOptions } from './run-options';
import type { ImageRunSettings } from '../image-config';
import type { CliRunOptions, RunConfig, WithImageConfig, WorkloadOptions } from './types';

/** Image env is trusted as-is (it was valid enough for the image's builder); malformed entries are skipped. */
function imageEnv(env: readonly string[] | undefined): EnvVar[] {
  return (env ?? []).flatMap((entry) => {
    const eq = entry.indexOf('=');
    return eq > 0 ? [{ name: entry.slice(0, eq), value: entry.slice(eq + 1) }] : [];
  });
}

/**
 * Step two of the merge rules: whatever the CLI and Smolfile left unset comes from the image.
 * Image env is the base that every other env source overrides. As the reference states it, a
 * Smolfile entrypoint does not discard the image's CMD (unlike `docker run --entrypoint`).
 */
export function applyImageConfig<T extends WorkloadOptions>(
  options: T,
  image: ImageRunSettings = {},
): WithImageConfig<T> {
  const entrypoint = [...(options.entrypoint ?? image.entrypoint ?? [])];
  const cmd = [...(options.cmd ?? image.cmd ?? [])];
  const { entrypoint: _e, cmd: _c, ...rest } = options;
  const resolved: WithImageConfig<T> = {
    ...rest,
    entrypoint,
    cmd,
    argv: [...entrypoint, ...cmd],
    env: mergeEnv(imageEnv(image.env), options.env),
  };
  const workdir = options.workdir ?? (image.workingDir || undefined);
  if (workdir !== undefined) resolved.workdir = workdir;
  if (image.user) resolved.user = image.user;
  return resolved;
}

/** CLI flags + Smolfile + image metadata, per the reference's precedence rules. */
export function resolveRunConfig(cli: CliRunOptions, smolfile?: Smolfile, imageConfig?: ImageRunSettings): RunConfig {
  return applyImageConfig(mergeRunOptions(cli, smolfile), imageConfig);
}
