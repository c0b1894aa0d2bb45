// Public API of @smolvm/pack: the .smolmachine format (docs/smolmachine.md) — writer, reader,
// verification remembered per file identity, and sections used in place or from a digest-keyed cache.
export { PACK_MAGIC, PACK_FORMAT_VERSION, SECTION_ALIGN, FOOTER_SIZE, MAX_MANIFEST_BYTES, PackFormatError, encodeFooter, decodeFooter, type PackFooter } from './format';
export {
  SectionMediaType,
  SECTION_NAMES,
  parseManifest,
  type SectionName,
  type PackSection,
  type PackManifest,
  type PackManifestBase,
  type PackNetwork,
  type PackArtifactProfile,
} from './manifest';
export { assemblePack, type AssembleOptions, type AssembledPack, type SectionSource } from './writer';
export { PackFile, type LocatedSection, type FileIdentity } from './reader';
export { extractSection, sectionDisk, inPlaceWeakness, sectionCacheDir, type SectionFile } from './sections';
export { packedBoot, importSections, importedBoot, type PackedBoot } from './boot';
export { packedWorkload, type PackedWorkload } from './workload';
export {
  pushPack,
  pullPack,
  pulledPackPath,
  resolvePackSource,
  isPackReference,
  PACK_MANIFEST_MEDIA_TYPE,
  type PushedPack,
  type PulledPack,
  type PullPackOptions,
  type PackRegistryOptions,
} from './registry';
