import type { Cidr } from '../cidr';
import type { EnvVar } from '../env';
import type { Platform } from '../platform';
import type { PortMapping } from '../port';
import type { VolumeMount } from '../volume';

/** [network]: egress allow lists. Non-empty lists imply outbound networking. */
export interface SmolfileNetwork {
  allowHosts: string[];
  allowCidrs: Cidr[];
}

/** [dev]: used by `machine run` and `machine create`, never packed. */
export interface SmolfileDev {
  volumes: VolumeMount[];
  ports: PortMapping[];
  /** Shell commands run on every VM start. */
  init: string[];
  env: EnvVar[];
  workdir?: string;
}

/** [artifact]: overrides used by `pack create`. */
export interface SmolfileArtifact {
  cpus?: number;
  memoryMib?: number;
  entrypoint?: string[];
  platform?: Platform;
}

/** [health]: used by `machine monitor`. Omitted timings are filled with the defaults. */
export interface HealthCheck {
  exec: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startupGraceMs: number;
}

export interface SmolfileAuth {
  sshAgent?: boolean;
}

/**
 * A validated Smolfile. Optional fields were absent from the file, so merge rules can tell
 * "not set" from "set to the default". Lists are empty when absent.
 */
export interface Smolfile {
  /** The name used in error messages (as given to parseSmolfile/loadSmolfile). */
  file: string;
  /** Validated, as written; parse with parseImageReference when needed. */
  image?: string;
  entrypoint?: string[];
  cmd?: string[];
  env: EnvVar[];
  workdir?: string;
  cpus?: number;
  memoryMib?: number;
  net?: boolean;
  storageGib?: number;
  overlayGib?: number;
  network: SmolfileNetwork;
  dev: SmolfileDev;
  artifact: SmolfileArtifact;
  health?: HealthCheck;
  auth: SmolfileAuth;
}
