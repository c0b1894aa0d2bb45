// Where smolvm keeps things. SMOLVM_HOME puts everything under one directory (tests, portable
// installs); otherwise the XDG base directories apply.
import os from 'node:os';
import path from 'node:path';

export interface SmolvmDirs {
  /** Durable state: machine records and disks. */
  data: string;
  /** Re-creatable content: image blobs, erofs images, kernels, snapshots. */
  cache: string;
  /** User configuration: registries.toml and friends. */
  config: string;
}

function xdg(env: NodeJS.ProcessEnv, variable: string, fallback: string): string {
  const value = env[variable];
  // The XDG spec says relative paths in these variables are invalid and must be ignored.
  return value && path.isAbsolute(value) ? value : path.join(os.homedir(), fallback);
}

export function smolvmDirs(env: NodeJS.ProcessEnv = process.env): SmolvmDirs {
  const home = env.SMOLVM_HOME;
  if (home) {
    const root = path.resolve(home);
    return { data: path.join(root, 'data'), cache: path.join(root, 'cache'), config: path.join(root, 'config') };
  }
  return {
    data: path.join(xdg(env, 'XDG_DATA_HOME', '.local/share'), 'smolvm'),
    cache: path.join(xdg(env, 'XDG_CACHE_HOME', '.cache'), 'smolvm'),
    config: path.join(xdg(env, 'XDG_CONFIG_HOME', '.config'), 'smolvm'),
  };
}
