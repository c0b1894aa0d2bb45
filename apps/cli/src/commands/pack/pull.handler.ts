// `smolvm pack pull REF [-o PATH]`: a thin adapter over @smolvm/pack's pullPack.
import type { PullEvent } from '@smolvm/oci';
import { pullPack } from '@smolvm/pack';
import { byteProgress, formatBytes } from '../../output/progress';
import { writeJson } from '../../output/table';
import type { PackPullArgs } from './pull';

export async function runPackPull(args: PackPullArgs): Promise<void> {
  const pulled = await pullPackWithProgress(args.reference, { quiet: args.quiet || args.json, output: args.output, platform: args.platform });
  if (args.json) {
    writeJson({
      reference: pulled.reference,
      path: pulled.path,
      manifestDigest: pulled.manifestDigest,
      packDigest: pulled.packDigest,
      platform: pulled.manifest.platform,
      downloadedBytes: pulled.downloadedBytes,
    });
    return;
  }
  process.stdout.write(`${pulled.path}\n`);
  if (!args.quiet) process.stderr.write(`pulled ${pulled.reference} (${pulled.manifest.platform}, ${formatBytes(pulled.downloadedBytes)} downloaded)\n`);
}

/** Pull with a byte bar on a terminal; shared with `--from REFERENCE`. */
export async function pullPackWithProgress(reference: string, options: { quiet: boolean; output?: string; platform?: string }): ReturnType<typeof pullPack> {
  const progress = byteProgress({ quiet: options.quiet });
  const onProgress = (event: PullEvent): void => {
    if (event.type === 'resolved' && event.totalBytes > 0) progress.start(event.totalBytes, 'pulling');
    else if (event.type === 'blob-progress') progress.update(event.overallBytes, event.overallTotal);
  };
  try {
    return await pullPack(reference, { output: options.output, platform: options.platform, onProgress, warn: (m) => process.stderr.write(`warning: ${m}\n`) });
  } finally {
    progress.stop();
  }
}
