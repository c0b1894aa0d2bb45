// The image a bare VM (no --image, no Smolfile image) runs on: the one config.toml's base_image or
// SMOLVM_BASE_IMAGE names (pulled like --image), else the Debian base tools/setup built, else the
// one the single-file smolvm carries. Never the agent's own busybox userland: without a base, a
// bare VM fails with how to get one.
import path from 'node:path';
import { SmolvmError } from '@smolvm/common';
import { loadUserConfig } from '@smolvm/config';
import type { BuiltBaseOptions, PreparedImage } from '@smolvm/oci';
import { shippedAssets } from '@smolvm/sea';
import { pullWithProgress } from '../image/pull-progress';

export async function prepareBaseImage(quiet: boolean, env: NodeJS.ProcessEnv = process.env): Promise<PreparedImage> {
  const config = loadUserConfig(env);
  if (config.baseImage) {
    try {
      return await pullWithProgress(config.baseImage, { quiet, pull: 'missing' });
    } catch (err) {
      if (!(err instanceof SmolvmError)) throw err;
      throw new SmolvmError(
        `the base image ${config.baseImage} (from ${config.baseImageSource}) is not available: ${err.message}`,
        {
          remedy: err.remedy ?? 'pull it with smolvm image pull, or name another base image',
          cause: err,
        },
      );
    }
  }
  // Loaded here: most commands never touch images.
  const { ImageService, ensureBuiltBase } = await import('@smolvm/oci');
  const service = new ImageService({ env });
  try {
    const reference = await ensureBuiltBase(service.store, env, builtBaseOptions(env));
    return await service.prepare(reference, { pull: 'never' });
  } finally {
    await service.close();
  }
}

/** Where the built base is besides the host's set-up: the single-file smolvm's own (extracted on use). */
export function builtBaseOptions(env: NodeJS.ProcessEnv = process.env): BuiltBaseOptions {
  const shipped = shippedAssets(env);
  return shipped?.has('base/base.json') ? { shippedDir: path.join(shipped.dir, 'base') } : {};
}
