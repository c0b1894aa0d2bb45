// Turns a parsed TOML document into a typed Smolfile, rejecting anything the reference does not
// define. Keys are checked in document order so the first error reported is the first in the file.
import { parseCidr } from '../cidr';
import { parseEnvEntry, type EnvVar } from '../env';
import { parseGuestPath } from '../guest-path';
import { parseAllowHost } from '../hostname';
import { parsePlatform } from '../platform';
import { parsePort } from '../port';
import { parseImageReference } from '../reference';
import { parseCpus, parseDiskSize, parseMemory } from '../resources';
import { parseVolume } from '../volume';
import type { KeyPath } from './key-path';
import type { Reader, TomlTable, TomlValue } from './reader';
import { readHealth } from './health';
import { unknownKey } from './schema';
import type { Smolfile, SmolfileArtifact, SmolfileAuth, SmolfileDev, SmolfileNetwork } from './types';

function envList(r: Reader, path: KeyPath, value: TomlValue): EnvVar[] {
  return r.list(path, value, (p, v) => r.parse(p, () => parseEnvEntry(r.string(p, v))));
}

function workdir(r: Reader, path: KeyPath, value: TomlValue): string {
  return r.parse(path, () => parseGuestPath(r.string(path, value), 'workdir', { allowRoot: true }));
}

function unique<T>(items: T[], key: (item: T) => string): T[] {
  const seen = new Set<string>();
  return items.filter((item) => {
    const k = key(item);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function readNetwork(r: Reader, table: TomlTable): SmolfileNetwork {
  const out: SmolfileNetwork = { allowHosts: [], allowCidrs: [] };
  for (const [key, value] of Object.entries(table)) {
    const p = ['network', key];
    if (key === 'allow_hosts') {
      out.allowHosts = unique(
        r.list(p, value, (ep, v) => r.parse(ep, () => parseAllowHost(r.string(ep, v)))),
        (h) => h,
      );
    } else if (key === 'allow_cidrs') {
      out.allowCidrs = unique(
        r.list(p, value, (ep, v) => r.parse(ep, () => parseCidr(r.string(ep, v)))),
        (c) => c.cidr,
      );
    } else {
      throw unknownKey(r, 'network', key, value);
    }
  }
  return out;
}

function readDev(r: Reader, table: TomlTable, baseDir: string): SmolfileDev {
  const out: SmolfileDev = { volumes: [], ports: [], init: [], env: [] };
  for (const [key, value] of Object.entries(table)) {
    const p = ['dev', key];
    switch (key) {
      case 'volumes':
        out.volumes = r.list(p, value, (ep, v) => r.parse(ep, () => parseVolume(r.string(ep, v), baseDir)));
        break;
      case 'ports':
        out.ports = r.list(p, value, (ep, v) => r.parse(ep, () => parsePort(r.string(ep, v))));
        break;
      case 'init':
        out.init = r.list(p, value, (ep, v) => {
          const command = r.string(ep, v);
          if (command.trim() === '') throw r.error(ep, 'init command is empty', 'remove the empty entry');
          return command;
        });
        break;
      case 'env':
        out.env = envList(r, p, value);
        break;
      case 'workdir':
        out.workdir = workdir(r, p, value);
        break;
      default:
        throw unknownKey(r, 'dev', key, value);
    }
  }
  return out;
}

function readArtifact(r: Reader, table: TomlTable): SmolfileArtifact {
  const out: SmolfileArtifact = {};
  for (const [key, value] of Object.entries(table)) {
    const p = ['artifact', key];
    switch (key) {
      case 'cpus':
        out.cpus = r.parse(p, () => parseCpus(r.integer(p, value)));
        break;
      case 'memory':
        out.memoryMib = r.parse(p, () => parseMemory(r.amount(p, value)));
        break;
      case 'entrypoint':
        out.entrypoint = r.argv(p, value);
        break;
      case 'oci_platform':
        out.platform = r.parse(p, () => parsePlatform(r.string(p, value)));
        break;
      default:
        throw unknownKey(r, 'artifact', key, value);
    }
  }
  return out;
}

function readAuth(r: Reader, table: TomlTable): SmolfileAuth {
  const out: SmolfileAuth = {};
  for (const [key, value] of Object.entries(table)) {
    if (key !== 'ssh_agent') throw unknownKey(r, 'auth', key, value);
    out.sshAgent = r.boolean(['auth', key], value);
  }
  return out;
}

export function validateSmolfile(doc: TomlTable, r: Reader, baseDir: string): Smolfile {
  const out: Smolfile = {
    file: r.file,
    env: [],
    network: { allowHosts: [], allowCidrs: [] },
    dev: { volumes: [], ports: [], init: [], env: [] },
    artifact: {},
    auth: {},
  };
  for (const [key, value] of Object.entries(doc)) {
    const p = [key];
    switch (key) {
      case 'image': {
        const image = r.string(p, value);
        r.parse(p, () => parseImageReference(image));
        out.image = image;
        break;
      }
      case 'entrypoint':
        out.entrypoint = r.argv(p, value);
        break;
      case 'cmd':
        out.cmd = r.argv(p, value);
        break;
      case 'env':
        out.env = envList(r, p, value);
        break;
      case 'workdir':
        out.workdir = workdir(r, p, value);
        break;
      case 'cpus':
        out.cpus = r.parse(p, () => parseCpus(r.integer(p, value)));
        break;
      case 'memory':
        out.memoryMib = r.parse(p, () => parseMemory(r.amount(p, value)));
        break;
      case 'net':
        out.net = r.boolean(p, value);
        break;
      case 'storage':
        out.storageGib = r.parse(p, () => parseDiskSize(r.amount(p, value)));
        break;
      case 'overlay':
        out.overlayGib = r.parse(p, () => parseDiskSize(r.amount(p, value)));
        break;
      case 'network':
        out.network = readNetwork(r, r.table(p, value));
        break;
      case 'dev':
        out.dev = readDev(r, r.table(p, value), baseDir);
        break;
      case 'artifact':
        out.artifact = readArtifact(r, r.table(p, value));
        break;
      case 'health':
        out.health = readHealth(r, r.table(p, value));
        break;
      case 'auth':
        out.auth = readAuth(r, r.table(p, value));
        break;
      default:
        throw unknownKey(r, '', key, value);
    }
  }
  if (out.net === false && (out.network.allowHosts.length > 0 || out.network.allowCidrs.length > 0)) {
    throw r.error(
      ['net'],
      'net = false contradicts [network] allow lists, which imply outbound networking',
      'remove net = false, or remove the allow lists',
    );
  }
  return out;
}
