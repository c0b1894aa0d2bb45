import { ImageService, type PullEvent } from '@smolvm/oci';
import { writeJson } from '../../output/table';
import { byteProgress, formatBytes } from '../../output/progress';
import type { PullArgs } from './pull';

export async function runPull(args: PullArgs): Promise<void> {
  const service = new ImageService({ warn: (message) => process.stderr.write(`warning: ${message}\n`) });
  const progress = byteProgress({ quiet: args.quiet });
  const onProgress = (event: PullEvent) => {
    if (event.type === 'resolved' && event.totalBytes > 0) progress.start(event.totalBytes, 'pulling');
    else if (event.type === 'blob-progress') progress.update(event.overallBytes, event.overallTotal);
  };
  try {
    const prepared = await service.prepare(args.image, { pull: 'always', platform: args.platform, onProgress });
    progress.stop();
    const { record } = prepared;
    const platform = [record.platform.os, record.platform.architecture, record.platform.variant].filter(Boolean).join('/');
    if (args.json) {
      writeJson({ reference: record.reference, manifestDigest: record.manifestDigest, platform, size: record.size, erofsPath: prepared.erofsPath });
    } else {
      process.stdout.write(`${record.reference}@${record.manifestDigest}\n`);
      if (!args.quiet) process.stderr.write(`pulled ${record.reference} (${platform}, ${formatBytes(record.size)})\n`);
    }
  } finally {
    progress.stop();
    await service.close();
  }
}
