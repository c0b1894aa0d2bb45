import { ImageService, shortDigest } from '@smolvm/oci';
import { renderTable, writeJson } from '../../output/table';
import { formatBytes } from '../../output/progress';
import type { ImageLsArgs } from './ls';

export async function runImageLs(args: ImageLsArgs): Promise<void> {
  const service = new ImageService();
  try {
    const images = service.list().map((r) => ({
      reference: r.reference,
      platform: [r.platform.os, r.platform.architecture, r.platform.variant].filter(Boolean).join('/'),
      manifestDigest: r.manifestDigest,
      size: r.size,
      pulledAt: r.pulledAt,
    }));
    if (args.json) {
      writeJson(images);
    } else if (images.length === 0) {
      process.stderr.write('no images yet; pull one with `smolvm image pull --image IMAGE`\n');
    } else {
      process.stdout.write(
        renderTable(
          ['REFERENCE', 'PLATFORM', 'DIGEST', 'SIZE', 'PULLED'],
          images.map((i) => [i.reference, i.platform, shortDigest(i.manifestDigest), formatBytes(i.size), i.pulledAt]),
        ),
      );
    }
  } finally {
    await service.close();
  }
}
