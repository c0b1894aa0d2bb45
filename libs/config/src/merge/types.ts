import type { Cidr } from '../cidr';
import type { EnvVar } from '../env';
import type { Platform } from '../platform';
import type { PortMapping } from '../port';
import type { ImageReference } from '../reference';
import type { HealthCheck } from '../smolfile/types';
import type { VolumeMount } from '../volume';

/**
 * `machine run` / `machine create` flags as the CLI received them (raw strings, so every flag
 * is validated by the same parsers as the Smolfile). Absent means "not given".
 */
export interface CliRunOptions {
  image?: string;
  /** Trailing arguments after `--`; an empty array counts as not given. */
  command?: string[];
  env?: string[];
  volumes?: string[];
  ports?: string[];
  init?: string[];
  cpus?: number | string;
  memory?: number | string;
  storage?: number | string;
  overlay?: number | string;
  workdir?: string;
  /** Booleans can only switch features on; false is the same as absent (see README). */
  net?: boolean;
  allowHosts?: string[];
  allowCidrs?: string[];
  outboundLocalhostOnly?: boolean;
  sshAgent?: boolean;
  /** Base for relative -v host paths. Default: process.cwd(). */
  cwd?: string;
  /** Source of values for `-e NAME` without "=". Default: process.env. */
  hostEnv?: Readonly<Record<string, string | undefined>>;
}

/** `pack create` flags. */
export interface CliPackOptions {
  image?: string;
  cpus?: number | string;
  memory?: number | string;
  platform?: string;
}

export interface NetworkPolicy {
  /** Outbound networking on. With both allow lists empty, outbound is unrestricted. */
  enabled: boolean;
  allowHosts: string[];
  allowCidrs: Cidr[];
}

/** What defines a workload, shared by run configs and packed artifacts. */
export interface WorkloadOptions {
  /** Undefined means a bare Alpine VM. */
  image?: ImageReference;
  /** Undefined means "take it from the image". */
  entrypoint?: string[];
  cmd?: string[];
  env: EnvVar[];
  workdir?: string;
  cpus: number;
  memoryMib: number;
  storageGib: number;
  overlayGib: number;
  network: NetworkPolicy;
  sshAgent: boolean;
  health?: HealthCheck;
}

/** CLI flags merged with a Smolfile, before the image's metadata is known. */
export interface MergedRunOptions extends WorkloadOptions {
  volumes: VolumeMount[];
  ports: PortMapping[];
  init: string[];
}

/** `pack create`: the Smolfile's top level with [artifact] overrides; no [dev] settings. */
export interface ArtifactProfile extends WorkloadOptions {
  /** Target platform; undefined means the host's. */
  platform?: Platform;
}

/** A workload with its image metadata applied: the command line is final. */
export type WithImageConfig<T extends WorkloadOptions> = Omit<T, 'entrypoint' | 'cmd'> & {
  entrypoint: string[];
  cmd: string[];
  /** entrypoint followed by cmd; empty means the VM's default shell. */
  argv: string[];
  user?: string;
};

export type RunConfig = WithImageConfig<MergedRunOptions>;
