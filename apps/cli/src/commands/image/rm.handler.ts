import { ImageService } from '@smolvm/oci';
import { formatBytes } from '../../output/progress';
import type { ImageRmArgs } from './rm';

export async function runImageRm(args: ImageRmArgs): Promise<void> {
  const service = new ImageService();
  try {
    const { removed, gc } = service.removeAndCollect(args.image, args.platform);
    for (const record of removed) process.stdout.write(`removed ${record.reference}@${record.manifestDigest}\n`);
    if (!args.quiet) process.stderr.write(`freed ${formatBytes(gc.freedBytes)}\n`);
  } finally {
    await service.close();
  }
}
