// Public API of @smolvm/erofs: writes read-only erofs images (uncompressed, 4 KiB blocks) from OCI layer
// tars, host directories or entry by entry, without root or native tools; plus a small reader.
export { buildErofsFromLayers, type LayerSource, type LayerStats, type ErofsLayersStats } from './layers';
export { buildErofsFromDirectory, type DirectoryBuildOptions } from './directory';
export { ErofsBuilder, type EntryAttributes, type FileContent } from './builder';
export {
  DEFAULT_CHUNK_BITS,
  type ErofsBuildOptions,
  type ErofsBuildStats,
  type ErofsDevice,
  type DeviceKind,
  type MappedFileSpec,
} from './image-build';
export { InvalidLayerError } from './errors';
export {
  openErofs,
  ErofsReader,
  type ErofsEntry,
  type ErofsSuperblock,
  type ErofsDeviceInfo,
  type ErofsChunkMap,
  type OpenErofsOptions,
} from './reader';
export { type InodeKind } from './format';
export { type Compression } from './decompress';
