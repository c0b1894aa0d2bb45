// Platforms ("linux/arm64/v8") and how an index entry is chosen for the one we run.
import os from 'node:os';
import { NotFoundError, UsageError } from '@smolvm/common';
import { splitPlatform, type Platform } from '@smolvm/config';
import type { Descriptor } from './manifest';

export type { Platform };

/** Names people and tools use for the same architecture, folded to the OCI spelling. */
const ARCH_ALIASES: Record<string, Platform> = {
  x86_64: { os: '', architecture: 'amd64' },
  'x86-64': { os: '', architecture: 'amd64' },
  aarch64: { os: '', architecture: 'arm64' },
  armhf: { os: '', architecture: 'arm', variant: 'v7' },
  armel: { os: '', architecture: 'arm', variant: 'v6' },
  i386: { os: '', architecture: '386' },
  i686: { os: '', architecture: '386' },
};

/** The variant an entry without one is taken to be, so "arm64" and "arm64/v8" match. */
function defaultVariant(architecture: string): string | undefined {
  if (architecture === 'arm64') return 'v8';
  if (architecture === 'arm') return 'v7';
  if (architecture === 'amd64') return 'v1';
  return undefined;
}

/**
 * Variants dropped from the canonical spelling: every arm64 CPU is v8 and every amd64 v1, so
 * nobody writes them. 32-bit arm keeps its variant: v6 and v7 binaries differ.
 */
const IMPLIED_VARIANT: Record<string, string> = { arm64: 'v8', amd64: 'v1' };

function effectiveVariant(platform: Platform): string | undefined {
  return platform.variant ?? defaultVariant(platform.architecture);
}

export function normalizePlatform(platform: Platform): Platform {
  const osName = platform.os.toLowerCase();
  let architecture = platform.architecture.toLowerCase();
  let variant = platform.variant?.toLowerCase() || undefined;
  const alias = ARCH_ALIASES[architecture];
  if (alias) {
    architecture = alias.architecture;
    variant = variant ?? alias.variant;
  }
  if (architecture === 'arm' && variant && /^[5-8]$/.test(variant)) variant = `v${variant}`;
  if (variant && variant === IMPLIED_VARIANT[architecture]) variant = undefined;
  return variant ? { os: osName, architecture, variant } : { os: osName, architecture };
}

/** Any platform a registry may list, normalized (aliases folded, implied variants dropped). */
export function parsePlatform(text: string): Platform {
  const split = splitPlatform(text.trim());
  if (!split || split.os === '' || split.architecture === '' || split.variant === '') {
    throw new UsageError(
      `invalid platform '${text}': expected OS/ARCH[/VARIANT], for example linux/arm64 or linux/arm/v7`,
    );
  }
  return normalizePlatform(split);
}

export function formatPlatform(platform: Platform): string {
  const p = normalizePlatform(platform);
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** process.arch names -> OCI architecture names. */
const NODE_ARCH: Record<string, Platform> = {
  x64: { os: 'linux', architecture: 'amd64' },
  arm64: { os: 'linux', architecture: 'arm64' },
  arm: { os: 'linux', architecture: 'arm', variant: 'v7' },
  ia32: { os: 'linux', architecture: '386' },
  ppc64: { os: 'linux', architecture: os.endianness() === 'LE' ? 'ppc64le' : 'ppc64' },
  s390x: { os: 'linux', architecture: 's390x' },
  riscv64: { os: 'linux', architecture: 'riscv64' },
  loong64: { os: 'linux', architecture: 'loong64' },
  mips64el: { os: 'linux', architecture: 'mips64le' },
};

/** The guest platform for this host: always linux (guests are Linux VMs), host CPU architecture. */
export function hostPlatform(arch: string = process.arch): Platform {
  const platform = NODE_ARCH[arch];
  if (!platform)
    throw new UsageError(`unsupported host architecture '${arch}'`, {
      remedy: 'pass an explicit platform, for example linux/amd64',
    });
  return normalizePlatform(platform);
}

/**
 * Whether an index entry's platform can serve `wanted`. A wanted platform without a variant
 * accepts any variant of that architecture; one with a variant needs it exactly.
 */
export function platformMatches(candidate: Platform, wanted: Platform): boolean {
  const c = normalizePlatform(candidate);
  const w = normalizePlatform(wanted);
  if (c.os !== w.os || c.architecture !== w.architecture) return false;
  return w.variant === undefined || effectiveVariant(c) === effectiveVariant(w);
}

/** Buildkit stores attestations in the index under platform unknown/unknown; never an image to run. */
function isAttestation(descriptor: Descriptor): boolean {
  return (
    descriptor.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' ||
    descriptor.platform?.os === 'unknown'
  );
}

/** Picks the manifest for `wanted` from an index; the default variant wins over other variants. */
export function selectManifest(manifests: Descriptor[], wanted: Platform, what = 'image'): Descriptor {
  const candidates = manifests.filter((m) => m.platform && !isAttestation(m) && platformMatches(m.platform, wanted));
  if (candidates.length > 0) {
    const want = effectiveVariant(normalizePlatform(wanted));
    const exact = candidates.find((m) => effectiveVariant(normalizePlatform(m.platform as Platform)) === want);
    return exact ?? candidates[0];
  }
  const available = manifests
    .filter((m) => m.platform && !isAttestation(m))
    .map((m) => formatPlatform(m.platform as Platform));
  throw new NotFoundError(
    `${what} has no ${formatPlatform(wanted)} variant (available: ${available.join(', ') || 'none'})`,
    {
      remedy: available.length
        ? `pass one of the available platforms, for example ${available[0]}`
        : 'use an image built for Linux',
    },
  );
}
