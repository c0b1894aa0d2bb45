// The image a bare VM (no --image, no Smolfile image) runs on: the one config.toml's base_image or
// SMOLVM_BASE_IMAGE names (pulled like --image), else the Debian base tools/setup built. Never the
// agent's own busybox userland: without a base, a bare VM fails with how to get one.
import { SmolvmError } from '@smolvm/common';
import { loadUserConfig } from '@smolvm/config';
import type { PreparedImage } from '@smolvm/oci';
import { pullWithProgress } from '../image/pull-progress';

export async function prepareBaseImage(quiet: boolean, env: NodeJS.ProcessEnv = process.env): Promise<PreparedImage> {
  const config = loadUserConfig(env);
  if (config.baseImage) {
    try {
      return await pullWithProgress(config.baseImage, { quiet, pull: 'missing' });
    } catch (err) {
      if (!(err instanceof SmolvmError)) throw err;
      throw new SmolvmError(`the base image ${config.baseImage} (from ${config.baseImageSource}) is not available: ${err.message}`, {
        remedy: err.remedy ?? 'pull it with smolvm image pull, or name another base image',
        cause: err,
      });
    }
  }
  // Loaded here: most commands never touch images.
  const { ImageService, ensureBuiltBase } = await import('@smolvm/oci');
  const service = new ImageService({ env });
  try {
    const reference = await ensureBuiltBase(service.store, env);
    return await service.prepare(reference, { pull: 'never' });
  } finally {
    await service.close();
  }
}

