// `smolvm pack push PATH REF`: a thin adapter over @smolvm/pack's pushPack.
import type { PushEvent } from '@smolvm/oci';
import { pushPack } from '@smolvm/pack';
import { stubRuntimeCandidates } from '../../stub';
import { byteProgress, formatBytes } from '../../output/progress';
import { writeJson } from '../../output/table';
import type { PackPushArgs } from './push';

export async function runPackPush(args: PackPushArgs): Promise<void> {
  const progress = byteProgress({ quiet: args.quiet || args.json });
  const sent = new Map<string, number>();
  const sizes = new Map<string, number>();
  const onProgress = (event: PushEvent): void => {
    if (event.type === 'blob-start') {
      sizes.set(event.digest, event.size);
      const total = [...sizes.values()].reduce((a, b) => a + b, 0);
      if (sizes.size === 1) progress.start(total, 'pushing');
      else
        progress.update(
          [...sent.values()].reduce((a, b) => a + b, 0),
          total,
        );
    } else if (event.type === 'blob-progress' || event.type === 'blob-done') {
      sent.set(event.digest, event.type === 'blob-done' ? event.size : event.bytes);
      progress.update([...sent.values()].reduce((a, b) => a + b, 0));
    }
  };
  let pushed;
  try {
    pushed = await pushPack(args.path, args.reference, {
      onProgress,
      warn: (m) => process.stderr.write(`warning: ${m}\n`),
      runtimeCandidates: stubRuntimeCandidates(),
    });
  } finally {
    progress.stop();
  }
  const platform = pushed.platform;
  if (args.json) {
    writeJson({
      reference: pushed.reference,
      digest: pushed.index.digest,
      manifestDigest: pushed.manifest.digest,
      packDigest: pushed.packDigest,
      platform,
      uploadedBytes: pushed.uploadedBytes,
      blobs: pushed.blobs,
    });
    return;
  }
  process.stdout.write(`${pushed.reference}@${pushed.index.digest}\n`);
  if (!args.quiet) {
    const kept = pushed.blobs.filter((b) => b.outcome !== 'uploaded').length;
    process.stderr.write(
      `pushed ${pushed.reference} (${platform}): ${formatBytes(pushed.uploadedBytes)} uploaded, ${kept} of ${pushed.blobs.length} blobs already on the registry\n`,
    );
  }
}
