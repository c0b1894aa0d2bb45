// Digests name content: every byte that enters the store is checked against one.
import crypto from 'node:crypto';
import { UsageError } from '@smolvm/common';

const SHA256 = /^sha256:[a-f0-9]{64}$/;

export function isDigest(value: string): boolean {
  return SHA256.test(value);
}

/** Accepts only sha256: it is what every registry serves, and the store is laid out by it. */
export function assertDigest(value: unknown, what = 'digest'): string {
  if (typeof value !== 'string' || !SHA256.test(value)) {
    const shown = typeof value === 'string' ? value : JSON.stringify(value);
    throw new UsageError(`invalid ${what} '${shown}': expected sha256: followed by 64 lowercase hex characters`);
  }
  return value;
}

export function digestHex(digest: string): string {
  return assertDigest(digest).slice('sha256:'.length);
}

export function sha256Digest(data: Uint8Array | string): string {
  return `sha256:${crypto.createHash('sha256').update(data).digest('hex')}`;
}

/** A short form for messages: the algorithm and 12 hex characters, like docker prints. */
export function shortDigest(digest: string): string {
  return digest.startsWith('sha256:') ? digest.slice(7, 19) : digest.slice(0, 12);
}
