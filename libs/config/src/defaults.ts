// The documented defaults and limits, in one place so the CLI help, the merge rules and the
// validators can never disagree.

export const DEFAULT_CPUS = 4;
export const DEFAULT_MEMORY_MIB = 8192;
export const DEFAULT_STORAGE_GIB = 20;
export const DEFAULT_OVERLAY_GIB = 2;
export const DEFAULT_NET = false;

export const MIN_CPUS = 1;
export const MAX_CPUS = 64;
/** Below this the guest kernel and agent do not fit. */
export const MIN_MEMORY_MIB = 64;
/** 1 TiB: anything above is certainly a unit mistake (e.g. bytes written as MiB). */
export const MAX_MEMORY_MIB = 1024 * 1024;
export const MIN_DISK_GIB = 1;
/** 16 TiB: a sparse disk this large is already a unit mistake. */
export const MAX_DISK_GIB = 16 * 1024;

export const DEFAULT_IMAGE_REGISTRY = 'docker.io';
export const DEFAULT_ARTIFACT_REGISTRY = 'registry.smolmachines.com';
export const DEFAULT_TAG = 'latest';

export const DEFAULT_HEALTH_INTERVAL_MS = 30_000;
export const DEFAULT_HEALTH_TIMEOUT_MS = 5_000;
export const DEFAULT_HEALTH_RETRIES = 3;
export const DEFAULT_HEALTH_STARTUP_GRACE_MS = 0;
export const MAX_HEALTH_RETRIES = 100;
/** Health timings above a day are a unit mistake, not a policy. */
export const MAX_HEALTH_DURATION_MS = 24 * 60 * 60 * 1000;
