// Random names and ids without loading node:crypto up front: it costs 3-5 ms to load and every
// CLI command imports @smolvm/common (and `machine exec`, @smolvm/machine-store), while only
// the commands that write something ever need a random name.
type Crypto = typeof import('node:crypto');
let crypto: Crypto | undefined;

function nodeCrypto(): Crypto {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  crypto ??= require('node:crypto') as Crypto;
  return crypto;
}

export function randomHex(bytes: number): string {
  return nodeCrypto().randomBytes(bytes).toString('hex');
}

export function randomUUID(): string {
  return nodeCrypto().randomUUID();
}
