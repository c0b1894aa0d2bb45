// Public API of @smolvm/common: typed errors with remedies, directories, crash-safe writes,
// process identity (pid + start time).
export {
  ExitCode,
  SmolvmError,
  UsageError,
  ConfigError,
  NotFoundError,
  ConflictError,
  formatError,
  exitCodeOf,
  usageFailure,
  exitWhenSettled,
  type SmolvmErrorOptions,
} from './errors';
export { smolvmDirs, type SmolvmDirs } from './dirs';
export {
  writeFileAtomic,
  writeJsonAtomic,
  tempPathFor,
  fsyncDir,
  fsyncPath,
  commitTempFile,
  markUsed,
} from './atomic-file';
export { processStartTime, currentProcessIdentity, isProcessAlive, type ProcessIdentity } from './process-identity';
export { ensurePrivateDir, assertTrustedPath, UntrustedPathError } from './private-files';
export { withTimeout, delay, type DelayOptions } from './async';
export { randomHex, randomUUID } from './random';
export { DEFERRED_CA_CERTS_ENV, restoreCaCertsEnv, deferCaCerts, extraCaCerts } from './ca-certs';
export { isJsonObject } from './json';
export { JsonReader, type JsonReaderOptions, type JsonFieldFailure } from './json-reader';
export { hashingTap, sha256File, type HashingTap } from './hash';
