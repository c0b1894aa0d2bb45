// What the CLI ships for booting VMs: the drivers (registered on import) and the guest agent
// bundle, which the build copies to dist/guest/agent.js beside the CLI bundle.
import fs from 'node:fs';
import path from 'node:path';
import { NotFoundError } from '@smolvm/common';
import '@smolvm/driver-kvm';
import '@smolvm/driver-hvf';

export function agentBundlePath(): string {
  const bundle = path.join(__dirname, 'guest', 'agent.js');
  if (!fs.existsSync(bundle)) {
    throw new NotFoundError(`the guest agent bundle is missing (${bundle})`, { remedy: 'rebuild smolvm: npx nx build cli' });
  }
  return bundle;
}
