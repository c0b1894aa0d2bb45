// Public API of @smolvm/config: Smolfile parsing and validation, merge rules, flag parsers,
// OCI reference parsing.
export * from './defaults';

export { parseSmolfile, loadSmolfile, type ParseSmolfileOptions } from './smolfile/load';
export type {
  Smolfile,
  SmolfileNetwork,
  SmolfileDev,
  SmolfileArtifact,
  SmolfileAuth,
  HealthCheck,
} from './smolfile/types';
export { SMOLFILE_KEYS, SMOLFILE_TABLES } from './smolfile/schema';
// The TOML key -> line scanner, for other TOML files that want file:line errors too.
export { KeyLocator } from './smolfile/key-locator';
export { formatKeyPath, type KeyPath } from './smolfile/key-path';

export { mergeRunOptions } from './merge/run-options';
export { applyImageConfig, resolveRunConfig } from './merge/apply-image';
export { resolveArtifactProfile } from './merge/artifact-profile';
export { mergeNetwork, LOCALHOST_CIDRS, type CliNetworkOptions } from './merge/network';
export type {
  CliRunOptions,
  CliPackOptions,
  NetworkPolicy,
  WorkloadOptions,
  MergedRunOptions,
  ArtifactProfile,
  WithImageConfig,
  RunConfig,
} from './merge/types';

export type { ImageConfig, ImageRunSettings } from './image-config';
export { parseVolume, type VolumeMount } from './volume';
export { parsePort, type PortMapping } from './port';
export { parseEnvEntry, parseEnvFlag, mergeEnv, type EnvVar } from './env';
export { parseCidr, type Cidr } from './cidr';
export { parseAllowHost } from './hostname';
export { parseCpus, parseMemory, parseDiskSize } from './resources';
export { parseDuration } from './duration';
export { parsePlatform, splitPlatform, formatPlatform, type Platform } from './platform';
export { parseGuestPath } from './guest-path';

export {
  parseImageReference,
  parseArtifactReference,
  parseDigest,
  formatReference,
  withDefaultTag,
  MAX_REFERENCE_NAME_LENGTH,
  type ImageReference,
} from './reference';

export { loadUserConfig, userConfigPath, USER_CONFIG_FILE_NAME, type UserConfig } from './user-config';
