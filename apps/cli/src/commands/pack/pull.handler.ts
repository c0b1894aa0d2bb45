// `smolvm pack pull REF [-o PATH]` and `--from REF`: thin adapters over @smolvm/pack's pullPack.
import type { PullEvent } from '@smolvm/oci';
import { pullPack, resolvePackSource } from '@smolvm/pack';
import { byteProgress, formatBytes } from '../../output/progress';
import { writeJson } from '../../output/table';
import type { PackPullArgs } from './pull';

export async function runPackPull(args: PackPullArgs): Promise<void> {
  const pulled = await pullPackWithProgress(args.reference, {
    quiet: args.quiet || args.json,
    output: args.output,
    platform: args.platform,
  });
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
  if (!args.quiet)
    process.stderr.write(
      `pulled ${pulled.reference} (${pulled.manifest.platform}, ${formatBytes(pulled.downloadedBytes)} downloaded)\n`,
    );
}

/** A byte bar on a terminal while `fn` pulls; nothing when piped or quiet. */
async function withPullProgress<T>(
  quiet: boolean,
  fn: (onProgress: (event: PullEvent) => void) => Promise<T>,
): Promise<T> {
  const progress = byteProgress({ quiet });
  const onProgress = (event: PullEvent): void => {
    if (event.type === 'resolved' && event.totalBytes > 0) progress.start(event.totalBytes, 'pulling');
    else if (event.type === 'blob-progress') progress.update(event.overallBytes, event.overallTotal);
  };
  try {
    return await fn(onProgress);
  } finally {
    progress.stop();
  }
}

const warn = (m: string): void => void process.stderr.write(`warning: ${m}\n`);

function pullPackWithProgress(
  reference: string,
  options: { quiet: boolean; output?: string; platform?: string },
): ReturnType<typeof pullPack> {
  return withPullProgress(options.quiet, (onProgress) =>
    pullPack(reference, { output: options.output, platform: options.platform, onProgress, warn }),
  );
}

/** A reference pulled into the pack cache (keyed by digest, reused), with progress on a terminal. */
export async function packFileFrom(value: string, quiet: boolean): Promise<string> {
  return (await withPullProgress(quiet, (onProgress) => resolvePackSource(value, { onProgress, warn }))).path;
}
