// The base image of bare VMs: the Debian root tools/base/build made at set-up (a zstd tar and its
// record in <cache>/base/), imported into the image store under its local name on first use. Like
// the guest kernel it is a per-host artifact: a custom SMOLVM_HOME finds the user's build too. The
// single-file smolvm carries the same record and tar, extracted into its cache (`shippedDir`).
import fs from 'node:fs';
import path from 'node:path';
import { NotFoundError, assertTrustedPath, smolvmDirs } from '@smolvm/common';
import { importLayerImage } from './import';
import type { ContentStore } from './store';

/** The record tools/base/build writes beside the tar. */
export interface BuiltBase {
  /** The local name it is imported under, e.g. smolvm.internal/base:debian-bookworm-0123abcd. */
  reference: string;
  /** The tar (zstd), in `<cache>/base/`. */
  layerPath: string;
  created: string;
}

const BUILT_BASE_REFERENCE = /^smolvm\.internal\/base:[a-z0-9.-]+$/;

/** Whether `reference` names a base tools/base/build made (local only: no registry serves it). */
export function isBuiltBaseReference(reference: string): boolean {
  return BUILT_BASE_REFERENCE.test(reference);
}

/** What a bare VM of the Debian base runs by default, with which PATH (Debian's own). */
const DEBIAN_ENV = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];
const DEBIAN_CMD = ['/bin/bash'];

export const BASE_REMEDY =
  'run tools/setup from the smolvm checkout (it builds the Debian base once), or name another base image: base_image = "IMAGE" in smolvm\'s config.toml, or SMOLVM_BASE_IMAGE=IMAGE';

export interface BuiltBaseOptions {
  /**
   * A directory holding a base record and tar as the single-file smolvm carries them, extracted
   * into this cache (`<cache>/sea/<digest>/base`); looked in after the host's own build.
   */
  shippedDir?: string;
}

/**
 * The base built on this host, if only this user can have written its record and tar (every bare
 * VM boots it): looked for in this cache, then in the user's default cache (a custom SMOLVM_HOME),
 * then in `shippedDir`.
 */
export function findBuiltBase(
  env: NodeJS.ProcessEnv = process.env,
  options: BuiltBaseOptions = {},
): BuiltBase | undefined {
  const cache = smolvmDirs(env).cache;
  const places = [{ dir: path.join(cache, 'base'), trustFrom: cache }];
  if (env.SMOLVM_HOME) {
    const own = smolvmDirs({ ...env, SMOLVM_HOME: undefined }).cache;
    places.push({ dir: path.join(own, 'base'), trustFrom: own });
  }
  // Trusted from this cache down, like every other extracted asset: a path outside it is refused.
  if (options.shippedDir) places.push({ dir: options.shippedDir, trustFrom: cache });
  for (const { dir, trustFrom } of places) {
    const found = readBuiltBase(dir, trustFrom);
    if (found) return found;
  }
  return undefined;
}

function readBuiltBase(dir: string, trustFrom: string): BuiltBase | undefined {
  const file = path.join(dir, 'base.json');
  try {
    assertTrustedPath(file, trustFrom);
    const record = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    const { reference, layer, created } = record;
    if (typeof reference !== 'string' || typeof layer !== 'string' || typeof created !== 'string') return undefined;
    if (!/^[a-z0-9.-]+\.tar\.zst$/.test(layer) || !isBuiltBaseReference(reference)) return undefined;
    const layerPath = path.join(dir, layer);
    assertTrustedPath(layerPath, trustFrom);
    return { reference, layerPath, created };
  } catch {
    return undefined;
  }
}

/**
 * The reference of the built base, imported into `store` unless it is there already; a
 * NotFoundError saying how to get one when this host has none.
 */
export async function ensureBuiltBase(
  store: ContentStore,
  env: NodeJS.ProcessEnv = process.env,
  options: BuiltBaseOptions = {},
): Promise<string> {
  const base = findBuiltBase(env, options);
  if (!base)
    throw new NotFoundError(
      'no base image for bare VMs: the Debian base is built by tools/setup, and this host has none',
      { remedy: BASE_REMEDY },
    );
  const present = store.findImages(base.reference, undefined).some((r) => store.hasBlob(r.manifestDigest));
  if (!present) {
    await importLayerImage(store, {
      reference: base.reference,
      layerPath: base.layerPath,
      compression: 'zstd',
      created: base.created,
      env: DEBIAN_ENV,
      cmd: DEBIAN_CMD,
      labels: { 'org.smolvm.base': 'debian' },
    });
  }
  return base.reference;
}
