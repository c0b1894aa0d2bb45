// Which credentials and transport settings apply to a registry host: smolvm's registries.toml
// first (it is ours and explicit), then `docker login`'s config.json.
import { DEFAULT_ARTIFACT_REGISTRY } from '@smolvm/config';
import { dockerConfigPath, loadDockerConfigAuths, type DockerConfigAuths } from './docker-config';
import {
  loadRegistriesFile,
  normalizeRegistryHost,
  registriesFilePath,
  type RegistriesFile,
  type RegistrySettings,
} from './registries-file';

export type Credentials =
  | { kind: 'basic'; username: string; password: string; source: string }
  | { kind: 'bearer'; token: string; source: string }
  | { kind: 'refresh'; refreshToken: string; source: string };

export interface RegistryConfigOptions {
  /** Defaults to `<config dir>/registries.toml`. */
  registriesFile?: string;
  /** Defaults to $DOCKER_CONFIG/config.json or ~/.docker/config.json; false to ignore Docker's file. */
  dockerConfig?: string | false;
  env?: NodeJS.ProcessEnv;
  warn?: (message: string) => void;
}

export class RegistryConfig {
  private constructor(
    private readonly file: RegistriesFile,
    private readonly docker: DockerConfigAuths | undefined,
  ) {}

  /** Throws ConfigError for an invalid or too widely readable registries.toml. */
  static load(options: RegistryConfigOptions = {}): RegistryConfig {
    const env = options.env ?? process.env;
    const file = loadRegistriesFile(options.registriesFile ?? registriesFilePath(env));
    const dockerFile = options.dockerConfig === undefined ? dockerConfigPath(env) : options.dockerConfig;
    const docker = dockerFile === false ? undefined : loadDockerConfigAuths(dockerFile, options.warn);
    return new RegistryConfig(file, docker);
  }

  /** An in-memory configuration, for tests and embedders that keep settings elsewhere. */
  static fromSettings(registries: Record<string, RegistrySettings>, artifactRegistry?: string): RegistryConfig {
    const map = new Map(Object.entries(registries).map(([host, s]) => [normalizeRegistryHost(host), s]));
    const file: RegistriesFile = { path: '(in memory)', registries: map };
    if (artifactRegistry !== undefined) file.artifactRegistry = normalizeRegistryHost(artifactRegistry);
    return new RegistryConfig(file, undefined);
  }

  get registriesFilePath(): string {
    return this.file.path;
  }

  /** Where artifact names without a registry go: `[artifacts] registry`, else registry.smolmachines.com. */
  get artifactRegistry(): string {
    return this.file.artifactRegistry ?? DEFAULT_ARTIFACT_REGISTRY;
  }

  settings(registry: string): RegistrySettings {
    return this.file.registries.get(normalizeRegistryHost(registry)) ?? {};
  }

  credentials(registry: string): Credentials | undefined {
    const host = normalizeRegistryHost(registry);
    const own = this.file.registries.get(host);
    if (own?.token !== undefined) return { kind: 'bearer', token: own.token, source: this.file.path };
    if (own?.username !== undefined && own.password !== undefined) {
      return { kind: 'basic', username: own.username, password: own.password, source: this.file.path };
    }
    const docker = this.docker?.auths.get(host);
    if (docker?.identityToken !== undefined)
      return { kind: 'refresh', refreshToken: docker.identityToken, source: this.docker?.path ?? '' };
    if (docker?.username !== undefined && docker.password !== undefined) {
      return { kind: 'basic', username: docker.username, password: docker.password, source: this.docker?.path ?? '' };
    }
    return undefined;
  }

  /** Why we may be missing credentials that the user believes they have. */
  credentialHint(registry: string): string | undefined {
    const host = normalizeRegistryHost(registry);
    if (!this.docker) return undefined;
    if (this.docker.helperHosts.has(host) || (this.docker.usesCredsStore && !this.docker.auths.has(host))) {
      return `credentials for ${host} in ${this.docker.path} live in a Docker credential helper, which smolvm does not read`;
    }
    return undefined;
  }
}
