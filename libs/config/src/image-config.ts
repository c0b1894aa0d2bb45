// What an OCI image's config blob says, normalised: @smolvm/oci parses the blob into it (the wire
// shape with `Entrypoint`, `ExposedPorts` maps and nulls stays inside that parser), the merge
// rules read the run settings from it.

export interface ImageConfig {
  architecture: string;
  os: string;
  variant?: string;
  /** ENTRYPOINT; undefined when the image sets none. */
  entrypoint?: string[];
  /** CMD; undefined when the image sets none. */
  cmd?: string[];
  /** "KEY=value" entries in image order. */
  env: string[];
  workingDir?: string;
  user?: string;
  /** "80/tcp", "53/udp". */
  exposedPorts: string[];
  volumes: string[];
  labels: Record<string, string>;
  stopSignal?: string;
  created?: string;
  /** Uncompressed layer digests, one per manifest layer, in order. */
  diffIds: string[];
}

/** The part of an image config that takes part in merging; absent fields leave the workload as is. */
export type ImageRunSettings = Partial<Pick<ImageConfig, 'entrypoint' | 'cmd' | 'env' | 'workingDir' | 'user'>>;
