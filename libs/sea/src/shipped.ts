// The running executable's own assets, extracted into this user's cache on first use.
import { createRequire } from 'node:module';
import path from 'node:path';
import { smolvmDirs } from '@smolvm/common';
import { extractAssets, type ExtractedAssets } from './extract';
import { MANIFEST_ASSET } from './manifest';
import { plainNode } from './plain-node';
import { isSingleExecutable, readAsset, readAssetText } from './runtime';

let shipped: ExtractedAssets | null | undefined;

/**
 * What this single executable carries, extracted (once per build and user) into
 * `<cache>/sea/<digest>`; undefined when this is not a single executable (a checkout's
 * `node dist/smolvm.js`, tests).
 */
export function shippedAssets(env: NodeJS.ProcessEnv = process.env): ExtractedAssets | undefined {
  if (shipped === undefined) {
    shipped = isSingleExecutable()
      ? extractAssets({ cacheDir: smolvmDirs(env).cache, manifestText: readAssetText(MANIFEST_ASSET), readAsset })
      : null;
  }
  return shipped ?? undefined;
}

/** The plain node inside this single executable, beside its extracted assets; undefined elsewhere. */
export function shippedNode(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const assets = shippedAssets(env);
  return assets && plainNode(process.execPath, assets.dir);
}

/**
 * require() of a native module (koffi): as seen from `fromFile` normally, from the extracted
 * node_modules in a single executable (which has no node_modules beside it).
 */
export function requireNative<T>(name: string, fromFile: string): T {
  const assets = shippedAssets();
  return createRequire(assets ? path.join(assets.dir, 'index.js') : fromFile)(name) as T;
}
