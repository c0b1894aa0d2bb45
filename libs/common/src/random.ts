import { nodeCrypto } from './lazy-crypto';

export function randomHex(bytes: number): string {
  return nodeCrypto().randomBytes(bytes).toString('hex');
}

export function randomUUID(): string {
  return nodeCrypto().randomUUID();
}
