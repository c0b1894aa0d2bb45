// Pull + prepare with a byte progress bar on a terminal; shared by `image pull` and `machine run`.
import type { PreparedImage, PrepareOptions, PullEvent } from '@smolvm/oci';
import type { ImageReference } from '@smolvm/config';
import { byteProgress } from '../../output/progress';

export async function pullWithProgress(
  reference: string | ImageReference,
  options: { quiet: boolean; pull: PrepareOptions['pull']; platform?: string },
): Promise<PreparedImage> {
  // Loaded here, not at the top: `machine run` without --image imports this module but never pulls.
  const { ImageService } = await import('@smolvm/oci');
  const service = new ImageService({ warn: (message) => process.stderr.write(`warning: ${message}\n`) });
  const progress = byteProgress({ quiet: options.quiet });
  const onProgress = (event: PullEvent) => {
    if (event.type === 'resolved' && event.totalBytes > 0) progress.start(event.totalBytes, 'pulling');
    else if (event.type === 'blob-progress') progress.update(event.overallBytes, event.overallTotal);
  };
  try {
    return await service.prepare(reference, { pull: options.pull, platform: options.platform, onProgress });
  } finally {
    progress.stop();
    await service.close();
  }
}
