// Public API of @smolvm/oci: OCI registry client, content-addressed store, image config, image -> erofs preparation
export { ImageService, prepare, type ImageServiceOptions, type ImageDetails } from './images';
export { pullImage, DEFAULT_PULL_CONCURRENCY, type PullOptions, type PulledImage } from './pull';
export {
  prepareImage,
  type PrepareOptions,
  type PreparedImage,
  type BuildErofs,
  type ErofsLayerSource,
} from './prepare';
export { importLayerImage, type ImportLayerOptions } from './import';
export {
  ensureBuiltBase,
  findBuiltBase,
  isBuiltBaseReference,
  BASE_REMEDY,
  type BuiltBase,
  type BuiltBaseOptions,
} from './base';
export { collectGarbage, DEFAULT_GC_GRACE_MS, type GcOptions, type GcResult } from './gc';
export { ContentStore, type ImageRecord } from './store';
export {
  RegistryClient,
  type RegistryClientOptions,
  type FetchedManifest,
  type RepositoryRef,
} from './registry-client';
export { downloadBlob, type BlobDownloadOptions } from './blob-download';
export {
  pushBlob,
  pushManifest,
  pushImage,
  pushIndex,
  type BlobUpload,
  type BlobPushOutcome,
  type PushedBlob,
  type ImageToPush,
  type PushBlobOptions,
} from './push';
export {
  pushArtifact,
  pullArtifact,
  resolveArtifactReference,
  MACHINE_ARTIFACT_TYPE,
  DEFAULT_ARTIFACT_LIMITS,
  type ArtifactLayer,
  type ArtifactToPush,
  type ArtifactPushOptions,
  type ArtifactPullOptions,
  type ArtifactLimits,
  type PushedArtifact,
  type PulledArtifact,
  type PushEvent,
} from './artifact';
export { BlobLocations, MAX_BLOB_LOCATIONS } from './blob-locations';
export { RegistryConfig, type Credentials, type RegistryConfigOptions } from './credentials';
export {
  loadRegistriesFile,
  ensureRegistriesFile,
  registriesFilePath,
  normalizeRegistryHost,
  REGISTRIES_FILE_TEMPLATE,
  type RegistriesFile,
  type RegistrySettings,
} from './registries-file';
export {
  loadDockerConfigAuths,
  dockerConfigPath,
  decodeDockerAuth,
  type DockerConfigAuths,
  type DockerAuth,
} from './docker-config';
export { resolveEndpoint, isLoopbackHost, type Endpoint } from './endpoint';
export { parseWwwAuthenticate, type AuthChallenge } from './www-authenticate';
export {
  parseManifest,
  MAX_MANIFEST_BYTES,
  type Descriptor,
  type ImageManifest,
  type ImageIndex,
  type ParsedManifest,
} from './manifest';
export { MediaType, MANIFEST_ACCEPT, layerCompression, type LayerCompression } from './media-types';
export {
  hostPlatform,
  formatPlatform,
  normalizePlatform,
  platformMatches,
  selectManifest,
  parsePlatform as parseOciPlatform,
  type Platform,
} from './platform';
export { parseImageConfig, MAX_CONFIG_BYTES, type ImageConfig } from './image-config';
export { sha256Digest, isDigest, shortDigest } from './digest';
export {
  RegistryAuthError,
  ImageNotFoundError,
  DigestMismatchError,
  SizeMismatchError,
  RegistryError,
  RetryableError,
  InterruptedTransferError,
} from './errors';
export type { PullEvent, ProgressListener } from './progress';
