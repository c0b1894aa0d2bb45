// config.toml (<config dir>/config.toml): smolvm's own per-user settings. One today:
//   base_image = "alpine:3.20"   the image bare VMs (no --image, no Smolfile image) run on;
//                                default: the Debian base tools/setup builds
// SMOLVM_BASE_IMAGE overrides it. Unknown keys and wrong types are ConfigErrors with file:line.
import fs from 'node:fs';
import path from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { ConfigError, smolvmDirs } from '@smolvm/common';
import { parseImageReference } from './reference';
import { KeyLocator } from './smolfile/key-locator';

export const USER_CONFIG_FILE_NAME = 'config.toml';

export interface UserConfig {
  /** The base image reference bare VMs use instead of the built Debian base. */
  baseImage?: string;
  /** Where it came from: `SMOLVM_BASE_IMAGE` or the file, for messages. */
  baseImageSource?: string;
}

export function userConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(smolvmDirs(env).config, USER_CONFIG_FILE_NAME);
}

function checkedReference(value: string, where: { file?: string; line?: number; keyPath?: string }): string {
  try {
    parseImageReference(value);
  } catch (err) {
    throw new ConfigError(`is not an image reference: ${(err as Error).message}`, where, {
      remedy: 'name an image as for --image, e.g. alpine:3.20 or 127.0.0.1:5000/base:1',
    });
  }
  return value;
}

/** SMOLVM_BASE_IMAGE, then config.toml; a missing file is an empty config. */
export function loadUserConfig(env: NodeJS.ProcessEnv = process.env, file = userConfigPath(env)): UserConfig {
  const fromEnv = env.SMOLVM_BASE_IMAGE;
  if (fromEnv !== undefined && fromEnv !== '')
    return {
      baseImage: checkedReference(fromEnv, { keyPath: 'SMOLVM_BASE_IMAGE' }),
      baseImageSource: 'SMOLVM_BASE_IMAGE',
    };
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new ConfigError(`cannot read: ${(err as Error).message}`, { file });
  }
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof TomlError)
      throw new ConfigError(err.message.split('\n')[0], { file, line: err.line }, { remedy: 'fix the TOML syntax' });
    throw err;
  }
  const locator = new KeyLocator(text);
  const config: UserConfig = {};
  for (const [key, value] of Object.entries(doc)) {
    const where = { file, line: locator.line([key]), keyPath: key };
    if (key !== 'base_image')
      throw new ConfigError(`unknown key '${key}'`, where, { remedy: 'the keys config.toml knows: base_image' });
    if (typeof value !== 'string' || value === '')
      throw new ConfigError('must be an image reference string', where, { remedy: 'write base_image = "alpine:3.20"' });
    config.baseImage = checkedReference(value, where);
    config.baseImageSource = file;
  }
  return config;
}
