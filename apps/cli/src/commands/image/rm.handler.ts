import { ConflictError } from '@smolvm/common';
import { MachineStore } from '@smolvm/machine-store';
import { ImageService } from '@smolvm/oci';
import { formatBytes } from '../../output/progress';
import type { ImageRmArgs } from './rm';

export async function runImageRm(args: ImageRmArgs): Promise<void> {
  const service = new ImageService();
  try {
    // A machine's overlay disk only makes sense on top of its exact image: keep what machines use.
    const digests = new Set(service.find(args.image, args.platform).map((r) => r.manifestDigest));
    const users = new MachineStore()
      .list()
      .machines.filter((m) => m.imageDigest !== undefined && digests.has(m.imageDigest));
    if (users.length > 0) {
      const names = users.map((m) => m.name).join(', ');
      throw new ConflictError(`image ${args.image} is used by machine${users.length > 1 ? 's' : ''} ${names}`, {
        remedy: `delete ${users.length > 1 ? 'those machines' : 'that machine'} first (smolvm machine delete NAME)`,
      });
    }
    const { removed, gc } = service.removeAndCollect(args.image, args.platform);
    for (const record of removed) process.stdout.write(`removed ${record.reference}@${record.manifestDigest}\n`);
    if (!args.quiet) process.stderr.write(`freed ${formatBytes(gc.freedBytes)}\n`);
  } finally {
    await service.close();
  }
}
