// The image config blob (OCI image config / Docker container config): what a VM needs to run
// the image the way its author intended. The blob's JSON (`config.Entrypoint`, maps, nulls) is
// read here into @smolvm/config's normalised ImageConfig.
import { JsonReader, SmolvmError, isJsonObject, type JsonReaderOptions } from '@smolvm/common';
import type { ImageConfig } from '@smolvm/config';
import { normalizePlatform, type Platform } from './platform';

export type { ImageConfig };

function bad(detail: string): SmolvmError {
  return new SmolvmError(`invalid image config: ${detail}`, { remedy: 'rebuild the image with a current build tool' });
}

const READER: JsonReaderOptions = { fail: (path, expected) => bad(`${path} must be ${expected}`) };

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
  const top = new JsonReader(doc, '', READER);
  // Builders leave out, or null, whatever the image does not set; a config that is not an object is none.
  const c = isJsonObject(doc.config) ? top.obj('config') : new JsonReader({}, 'config', READER);
  const labels: Record<string, string> = {};
  if (isJsonObject(c.raw.Labels))
    for (const [k, v] of Object.entries(c.raw.Labels)) if (typeof v === 'string') labels[k] = v;
  const rootfs = isJsonObject(doc.rootfs) ? top.obj('rootfs') : undefined;
  const keys = (value: unknown): string[] => (isJsonObject(value) ? Object.keys(value) : []);
  const list = (r: JsonReader, key: string): string[] | undefined => (r.has(key) ? r.strArray(key) : undefined);
  const config: ImageConfig = {
    architecture: doc.architecture,
    os: doc.os,
    env: list(c, 'Env') ?? [],
    exposedPorts: keys(c.raw.ExposedPorts),
    volumes: keys(c.raw.Volumes),
    labels,
    diffIds: (rootfs && list(rootfs, 'diff_ids')) ?? [],
  };
  // An empty string means unset, as in Docker's own reading of these fields.
  const optional = {
    variant: top.optStr('variant'),
    entrypoint: list(c, 'Entrypoint'),
    cmd: list(c, 'Cmd'),
    workingDir: c.optStr('WorkingDir'),
    user: c.optStr('User'),
    stopSignal: c.optStr('StopSignal'),
    created: top.optStr('created'),
  };
  for (const [key, value] of Object.entries(optional))
    if (value !== undefined && value !== '') Object.assign(config, { [key]: value });
  return config;
}

export function configPlatform(config: ImageConfig): Platform {
  return normalizePlatform({ os: config.os, architecture: config.architecture, variant: config.variant });
}
