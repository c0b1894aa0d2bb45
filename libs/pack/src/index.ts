// Public API of @smolvm/pack: the .smolmachine format (docs/smolmachine.md) — writer, reader,
// verification remembered per file identity, and sections used in place or from a digest-keyed cache.
export * from './local';
export {
  pushPack,
  pullPack,
  pulledPackPath,
  resolvePackSource,
  PACK_MANIFEST_MEDIA_TYPE,
  type PushedPack,
  type PushPackOptions,
  type PulledPack,
  type PullPackOptions,
  type PackRegistryOptions,
} from './registry';
