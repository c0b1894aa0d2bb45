// What the CLI ships for booting VMs: the drivers (registered on import), the guest agent bundle
// (the build copies it to dist/guest/agent.js beside the CLI bundle) and, in the single-file
// smolvm, the guest kernel, busybox, koffi and the node the agent runs on, extracted from the
// executable into the user's cache (see @smolvm/sea).
import fs from 'node:fs';
import path from 'node:path';
import { NotFoundError } from '@smolvm/common';
import type { GuestAssets } from '@smolvm/runtime';
import { shippedAssets, shippedNode } from '@smolvm/sea';
import '@smolvm/drivers';

export function agentBundlePath(): string {
  const shipped = shippedAssets();
  if (shipped) return shipped.path('agent.js');
  const bundle = path.join(__dirname, 'guest', 'agent.js');
  if (!fs.existsSync(bundle)) {
    throw new NotFoundError(`the guest agent bundle is missing (${bundle})`, {
      remedy: 'rebuild smolvm: npx nx build cli',
    });
  }
  return bundle;
}

/** In the single-file smolvm, everything a guest needs comes from the executable; otherwise from the host. */
export function guestAssets(): GuestAssets | undefined {
  const shipped = shippedAssets();
  if (!shipped) return undefined;
  return {
    ...(shipped.has('vmlinux') ? { kernel: shipped.path('vmlinux') } : {}),
    ...(shipped.has('busybox') ? { busybox: shipped.path('busybox') } : {}),
    koffiFrom: shipped.dir,
    node: shippedNode(),
  };
}
