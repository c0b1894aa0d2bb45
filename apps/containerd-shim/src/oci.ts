// What the shim reads from an OCI bundle's config.json (runtime spec): the process to run and
// the VM's size. Only the fields a micro-VM can honour; the rest (namespaces, cgroups, seccomp,
// capabilities) describe a host container and do not apply inside a VM of its own.
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '@smolvm/common';

export interface ProcessSpec {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  /** `uid:gid`, resolved by the guest agent. */
  user: string;
  terminal: boolean;
  consoleSize?: { rows: number; cols: number };
}

/** A directory bind mount of the spec: shared into the VM over 9p at `guestPath`. */
export interface DirMount {
  hostPath: string;
  guestPath: string;
  readOnly: boolean;
}

export interface BundleSpec {
  process: ProcessSpec;
  /** The spec's bind mounts of directories (volumes); other mounts (proc, tmpfs, files) are not applied. */
  mounts: DirMount[];
  /** spec.root.path, absolute: the rootfs when containerd passes no mounts. */
  rootPath: string;
  annotations: Record<string, string>;
  cpus: number;
  memoryMiB: number;
}

/** A VM without limits in its spec: one CPU and 512 MiB, what a small container gets. */
export const DEFAULT_CPUS = 1;
export const DEFAULT_MEMORY_MIB = 512;
const MIN_MEMORY_MIB = 128;
const MAX_CPUS = 64;
const MAX_CONFIG_BYTES = 4 << 20;
/** More shares than this is not a container any VM should boot with. */
const MAX_MOUNTS = 64;

type JsonObject = Record<string, unknown>;
const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

export function readBundle(bundle: string): BundleSpec {
  const file = path.join(bundle, 'config.json');
  const size = fs.statSync(file).size;
  if (size > MAX_CONFIG_BYTES)
    throw new UsageError(`${file} is ${size} bytes, more than a runtime spec needs`, {
      remedy: 'check what wrote the bundle',
    });
  const spec: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (!isObject(spec) || !isObject(spec.process))
    throw new UsageError(`${file} has no process`, { remedy: 'give the container a process (args) to run' });
  const root = isObject(spec.root) && typeof spec.root.path === 'string' ? spec.root.path : 'rootfs';
  const annotations = isObject(spec.annotations)
    ? (Object.fromEntries(Object.entries(spec.annotations).filter(([, v]) => typeof v === 'string')) as Record<
        string,
        string
      >)
    : {};
  const resources = isObject(spec.linux) && isObject(spec.linux.resources) ? spec.linux.resources : {};
  return {
    process: parseProcess(spec.process, file),
    mounts: dirMounts(spec.mounts),
    rootPath: path.resolve(bundle, root),
    annotations,
    ...vmSize(resources),
  };
}

/**
 * Bind mounts whose source is a directory (containerd's --mount, Kubernetes volumes): the rest
 * are the API filesystems the guest makes itself, or single files, which 9p cannot share.
 */
function dirMounts(mounts: unknown): DirMount[] {
  const out: DirMount[] = [];
  for (const m of Array.isArray(mounts) ? mounts.slice(0, MAX_MOUNTS) : []) {
    if (!isObject(m) || typeof m.source !== 'string' || typeof m.destination !== 'string') continue;
    const options = Array.isArray(m.options) ? m.options.filter((o): o is string => typeof o === 'string') : [];
    if (m.type !== 'bind' && !options.includes('bind') && !options.includes('rbind')) continue;
    if (!path.isAbsolute(m.source) || !path.isAbsolute(m.destination) || path.normalize(m.destination) === '/')
      continue;
    if (!fs.statSync(m.source, { throwIfNoEntry: false })?.isDirectory()) continue;
    out.push({ hostPath: m.source, guestPath: path.normalize(m.destination), readOnly: options.includes('ro') });
  }
  return out;
}

/** An OCI Process object (config.json's, or the one an Exec carries). */
export function parseProcess(p: unknown, where: string): ProcessSpec {
  if (!isObject(p))
    throw new UsageError(`${where}: the process is not an object`, { remedy: 'pass an OCI runtime-spec Process' });
  const args = p.args;
  if (!Array.isArray(args) || args.length === 0 || !args.every((a) => typeof a === 'string')) {
    throw new UsageError(`${where}: process.args is empty`, { remedy: 'give the container a command' });
  }
  const env: Record<string, string> = {};
  for (const e of Array.isArray(p.env) ? p.env : []) {
    if (typeof e !== 'string') continue;
    const eq = e.indexOf('=');
    if (eq > 0) env[e.slice(0, eq)] = e.slice(eq + 1);
  }
  const user = isObject(p.user) ? p.user : {};
  const uid = typeof user.uid === 'number' ? user.uid : 0;
  const gid = typeof user.gid === 'number' ? user.gid : 0;
  const size =
    isObject(p.consoleSize) && typeof p.consoleSize.height === 'number' && typeof p.consoleSize.width === 'number'
      ? { rows: p.consoleSize.height, cols: p.consoleSize.width }
      : undefined;
  return {
    argv: args as string[],
    env,
    cwd: typeof p.cwd === 'string' && p.cwd.startsWith('/') ? p.cwd : '/',
    user: `${uid}:${gid}`,
    terminal: p.terminal === true,
    ...(size ? { consoleSize: size } : {}),
  };
}

/** CPUs from the CFS quota (rounded up), memory from the limit; defaults without them. */
function vmSize(resources: JsonObject): { cpus: number; memoryMiB: number } {
  let cpus = DEFAULT_CPUS;
  const cpu = isObject(resources.cpu) ? resources.cpu : {};
  if (typeof cpu.quota === 'number' && cpu.quota > 0 && typeof cpu.period === 'number' && cpu.period > 0) {
    cpus = Math.min(MAX_CPUS, Math.max(1, Math.ceil(cpu.quota / cpu.period)));
  }
  let memoryMiB = DEFAULT_MEMORY_MIB;
  const memory = isObject(resources.memory) ? resources.memory : {};
  if (typeof memory.limit === 'number' && memory.limit > 0)
    memoryMiB = Math.max(MIN_MEMORY_MIB, Math.floor(memory.limit / (1 << 20)));
  return { cpus, memoryMiB };
}
