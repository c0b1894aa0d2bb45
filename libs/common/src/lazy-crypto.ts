// node:crypto is loaded on first use, not at import: it costs 3-5 ms and every CLI command imports
// @smolvm/common (and `machine exec`, @smolvm/machine-store), while only the commands that write
// or verify something need it.
type Crypto = typeof import('node:crypto');
let crypto: Crypto | undefined;

export function nodeCrypto(): Crypto {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  crypto ??= require('node:crypto') as Crypto;
  return crypto;
}
