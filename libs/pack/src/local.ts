// @smolvm/pack without its registry half: what booting and making machines from a pack file needs.
// Machines import this, so that commands such as `machine ls` do not load the registry client
// (undici: http, http2, tls).
export {
  PACK_MAGIC,
  PACK_FORMAT_VERSION,
  PACK_READ_VERSIONS,
  SECTION_ALIGN,
  FOOTER_SIZE,
  MAX_MANIFEST_BYTES,
  PackFormatError,
  encodeFooter,
  decodeFooter,
  type PackFooter,
} from './format';
export {
  SectionMediaType,
  SECTION_NAMES,
  parseManifest,
  manifestVersion,
  sectionMediaType,
  SECTION_COMPRESSIONS,
  COMPRESSIBLE_SECTIONS,
  MAX_UNCOMPRESSED_BYTES,
  RUNTIME_MEDIA_TYPE,
  MAX_RUNTIME_BYTES,
  type PackRuntime,
  type SectionCompression,
  type SectionName,
  type PackSection,
  type PackManifest,
  type PackManifestBase,
  type PackNetwork,
  type PackArtifactProfile,
  type PackSnapshot,
} from './manifest';
export { assemblePack, type AssembleOptions, type AssembledPack, type SectionSource } from './writer';
export { PackFile, type LocatedSection, type FileIdentity } from './reader';
export {
  extractSection,
  writeSection,
  sectionDisk,
  inPlaceWeakness,
  sectionCacheDir,
  cachedSectionName,
  type SectionFile,
} from './sections';
export { packedBoot, importSections, importBootSections, importedBoot, type PackedBoot } from './boot';
export { runtimeOf, runtimeDisk, type RuntimeDisk } from './runtime';
export { packedWorkload, type PackedWorkload } from './workload';
export { isPackReference } from './source';
