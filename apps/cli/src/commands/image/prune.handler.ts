import { ImageService } from '@smolvm/oci';
import { writeJson } from '../../output/table';
import { formatBytes } from '../../output/progress';
import type { ImagePruneArgs } from './prune';

export async function runImagePrune(args: ImagePruneArgs): Promise<void> {
  const service = new ImageService();
  try {
    const result = service.gc({ dryRun: args['dry-run'] });
    if (args.json) {
      writeJson({ ...result, dryRun: args['dry-run'] });
      return;
    }
    const verb = args['dry-run'] ? 'would free' : 'freed';
    process.stdout.write(
      `${verb} ${formatBytes(result.freedBytes)}: ${result.removedBlobs.length} blobs, ${result.removedErofs.length} prepared images, ${result.removedTemp} temp files\n`,
    );
  } finally {
    await service.close();
  }
}
