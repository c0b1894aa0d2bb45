// Public API of @smolvm/sea: what a single executable carries (embedded assets, extracted per
// user by digest) and the plain Node runtime inside it.
export { isSingleExecutable, readAsset, readAssetText } from './runtime';
export { MANIFEST_ASSET, MANIFEST_VERSION, parseManifest, type SeaFile, type SeaManifest } from './manifest';
export { extractAssets, manifestDigest, type ExtractedAssets, type ExtractOptions } from './extract';
export { fuseOffset, plainNode } from './plain-node';
export { shippedAssets, shippedNode, requireNative } from './shipped';
