import { writeJson } from '../../output/table';
import { formatBytes } from '../../output/progress';
import { pullWithProgress } from './pull-progress';
import type { PullArgs } from './pull';

export async function runPull(args: PullArgs): Promise<void> {
  const prepared = await pullWithProgress(args.image, { quiet: args.quiet, pull: 'always', platform: args.platform });
  const { record } = prepared;
  const platform = [record.platform.os, record.platform.architecture, record.platform.variant]
    .filter(Boolean)
    .join('/');
  if (args.json) {
    writeJson({
      reference: record.reference,
      manifestDigest: record.manifestDigest,
      platform,
      size: record.size,
      erofsPath: prepared.erofsPath,
    });
  } else {
    process.stdout.write(`${record.reference}@${record.manifestDigest}\n`);
    if (!args.quiet) process.stderr.write(`pulled ${record.reference} (${platform}, ${formatBytes(record.size)})\n`);
  }
}
