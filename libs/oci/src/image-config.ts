// The image config blob (OCI image config / Docker container config): what a VM needs to run
// the image the way its author intended. The blob's JSON (`config.Entrypoint`, maps, nulls) is
// read here into @smolvm/config's normalised ImageConfig.
import { SmolvmError, isJsonObject } from '@smolvm/common';
import type { ImageConfig } from '@smolvm/config';
import { normalizePlatform, type Platform } from './platform';

export type { ImageConfig };

function stringList(value: unknown, field: string): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw bad(`${field} must be a list of strings`);
  return value as string[];
}

function optionalString(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw bad(`${field} must be a string`);
  return value;
}

function bad(detail: string): SmolvmError {
  return new SmolvmError(`invalid image config: ${detail}`, { remedy: 'rebuild the image with a current build tool' });
}

/**
 * Configs are read whole into memory; real ones are a few KiB (with a long history, some hundred
 * KiB). The bound is checked against the manifest's descriptor, before any byte is fetched.
 */
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

export function parseImageConfig(bytes: Uint8Array): ImageConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw bad('not JSON');
  }
  if (!isJsonObject(doc)) throw bad('not a JSON object');
  if (typeof doc.architecture !== 'string' || typeof doc.os !== 'string') throw bad('architecture and os are required');
  const c = isJsonObject(doc.config) ? doc.config : {};
  const labels: Record<string, string> = {};
  if (isJsonObject(c.Labels)) for (const [k, v] of Object.entries(c.Labels)) if (typeof v === 'string') labels[k] = v;
  const rootfs = isJsonObject(doc.rootfs) ? doc.rootfs : {};
  const config: ImageConfig = {
    architecture: doc.architecture,
    os: doc.os,
    env: stringList(c.Env, 'Env') ?? [],
    exposedPorts: isJsonObject(c.ExposedPorts) ? Object.keys(c.ExposedPorts) : [],
    volumes: isJsonObject(c.Volumes) ? Object.keys(c.Volumes) : [],
    labels,
    diffIds: stringList(rootfs.diff_ids, 'rootfs.diff_ids') ?? [],
  };
  const variant = optionalString(doc.variant, 'variant');
  if (variant) config.variant = variant;
  const entrypoint = stringList(c.Entrypoint, 'Entrypoint');
  if (entrypoint) config.entrypoint = entrypoint;
  const cmd = stringList(c.Cmd, 'Cmd');
  if (cmd) config.cmd = cmd;
  const workingDir = optionalString(c.WorkingDir, 'WorkingDir');
  if (workingDir) config.workingDir = workingDir;
  const user = optionalString(c.User, 'User');
  if (user) config.user = user;
  const stopSignal = optionalString(c.StopSignal, 'StopSignal');
  if (stopSignal) config.stopSignal = stopSignal;
  const created = optionalString(doc.created, 'created');
  if (created) config.created = created;
  return config;
}

export function configPlatform(config: ImageConfig): Platform {
  return normalizePlatform({ os: config.os, architecture: config.architecture, variant: config.variant });
}
