// The pack manifest: every field the reference names (platform, host_platform, created,
// smolvm_version), the workload, resources, network policy, the Smolfile's [artifact] profile
// and the section table. Parsed strictly: a pack comes from someone else, and what it says
// decides what a VM boots and runs.
import { PackFormatError, MAX_SECTIONS, PACK_READ_VERSIONS, SECTION_ALIGN } from './format';

/** What a section holds; `name` is its role in the machine. */
export const SectionMediaType = {
  kernel: 'application/vnd.smolvm.kernel.vmlinux.v1',
  agent: 'application/vnd.smolvm.agent.erofs.v1',
  rootfs: 'application/vnd.smolvm.rootfs.erofs.v1',
  overlay: 'application/vnd.smolvm.disk.ext4.v1',
  storage: 'application/vnd.smolvm.disk.ext4.v1',
  // Format version 2: a running machine's state (`snapshot` in the manifest).
  memory: 'application/vnd.smolvm.memory.raw.v1',
  state: 'application/vnd.smolvm.vmstate.qemu.v1',
} as const;
export type SectionName = keyof typeof SectionMediaType;
export const SECTION_NAMES = Object.keys(SectionMediaType) as SectionName[];
/** Sections only a version 2 pack may have. */
const SNAPSHOT_SECTIONS: readonly SectionName[] = ['memory', 'state'];
const MIB = 1024 * 1024;

/**
 * A running machine's state packed with `--from-snapshot` (format version 2): the `memory`
 * section is its RAM, `state` the hypervisor's device state. A restore needs a host whose
 * hypervisor is the one that saved it, exactly.
 */
export interface PackSnapshot {
  /** The snapshot it was packed from (MACHINE:TAG). */
  id: string;
  /** The driver that saved it (e.g. `kvm`, QEMU under KVM or TCG). */
  driver: string;
  /** The QEMU that saved it; a restore compares it with the QEMU it starts. */
  qemu: { major: number; minor: number; micro: number };
  qemu_package: string;
}

export interface PackSection {
  name: SectionName;
  media_type: string;
  /** From the payload's first byte; a multiple of SECTION_ALIGN. */
  offset: number;
  size: number;
  sha256: string;
}

export interface PackNetwork {
  net: boolean;
  allow_hosts: string[];
  allow_cidrs: string[];
}

/** The Smolfile's [artifact] table as given (before it was applied to the fields below). */
export interface PackArtifactProfile {
  cpus?: number;
  memory_mib?: number;
  entrypoint?: string[];
  oci_platform?: string;
}

export interface PackManifest {
  format: 'smolmachine';
  version: number;
  /** The guest's OS/arch (OCI form, e.g. linux/amd64). */
  platform: string;
  /** The host OS/arch the packed stub and kernel run on (e.g. linux/amd64). */
  host_platform: string;
  /** RFC 3339. */
  created: string;
  smolvm_version: string;
  /** The OCI image it was packed from; null for the bare image. */
  image: { reference: string; digest: string } | null;
  /** The packed machine's name when made with --from-vm. */
  from_vm: string | null;
  /** The final command line pieces (image config applied): run uses entrypoint + (CMD args or cmd). */
  entrypoint: string[];
  cmd: string[];
  env: string[];
  workdir: string | null;
  user: string | null;
  cpus: number;
  memory_mib: number;
  /** Sizes a machine made from this pack gets (GiB). */
  storage_gib: number;
  overlay_gib: number;
  network: PackNetwork;
  artifact: PackArtifactProfile | null;
  /**
   * Version 2 only: absent, not null, otherwise, so a version 1 manifest serialized again (a
   * registry's config, a machine's pack.json) stays one older readers accept.
   */
  snapshot?: PackSnapshot;
  sections: PackSection[];
}

/** The manifest without its section table: what a writer is given. */
export type PackManifestBase = Omit<PackManifest, 'format' | 'version' | 'sections'>;

/** The version a manifest is written as: 1 unless it carries a snapshot, so older readers keep reading it. */
export function manifestVersion(manifest: Pick<PackManifestBase, 'snapshot'>): number {
  return manifest.snapshot ? 2 : 1;
}

type Obj = Record<string, unknown>;

class Checker {
  constructor(readonly file: string) {}
  fail(why: string): never {
    throw new PackFormatError(this.file, `its manifest ${why}`);
  }
  obj(v: unknown, what: string): Obj {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(`field ${what} is not an object`);
    return v as Obj;
  }
  str(v: unknown, what: string, max = 4096): string {
    if (typeof v !== 'string' || v.length > max || v.includes('\0')) this.fail(`field ${what} is not a string of at most ${max} characters`);
    return v;
  }
  strOrNull(v: unknown, what: string): string | null {
    return v === null ? null : this.str(v, what);
  }
  int(v: unknown, what: string, min: number, max: number): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) this.fail(`field ${what} is not an integer in ${min}..${max}`);
    return v;
  }
  bool(v: unknown, what: string): boolean {
    if (typeof v !== 'boolean') this.fail(`field ${what} is not true or false`);
    return v;
  }
  strings(v: unknown, what: string, maxItems = 4096): string[] {
    if (!Array.isArray(v) || v.length > maxItems) this.fail(`field ${what} is not a list of at most ${maxItems} strings`);
    return v.map((x, i) => this.str(x, `${what}[${i}]`));
  }
  known(o: Obj, keys: string[], what: string): void {
    for (const k of Object.keys(o)) if (!keys.includes(k)) this.fail(`has an unknown field ${what}${k}`);
  }
}

const MANIFEST_KEYS = ['format', 'version', 'platform', 'host_platform', 'created', 'smolvm_version', 'image', 'from_vm', 'entrypoint', 'cmd', 'env', 'workdir', 'user', 'cpus', 'memory_mib', 'storage_gib', 'overlay_gib', 'network', 'artifact', 'sections'];
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const PLATFORM = /^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/;
const SHA256 = /^[0-9a-f]{64}$/;

/**
 * Parses and checks a manifest: known fields only, types and bounds, and a section table whose
 * sections are aligned, in order, non-overlapping and end before `manifestOffset`.
 */
export function parseManifest(bytes: Buffer, file: string, manifestOffset: number): PackManifest {
  const c = new Checker(file);
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    c.fail('is not JSON');
  }
  const o = c.obj(raw, '(top level)');
  if (o.format !== 'smolmachine') c.fail('does not say format "smolmachine"');
  const version = c.int(o.version, 'version', 1, Math.max(...PACK_READ_VERSIONS));
  c.known(o, version >= 2 ? [...MANIFEST_KEYS, 'snapshot'] : MANIFEST_KEYS, '');
  const platform = c.str(o.platform, 'platform', 64);
  const hostPlatform = c.str(o.host_platform, 'host_platform', 64);
  if (!PLATFORM.test(platform) || !PLATFORM.test(hostPlatform)) c.fail('has a platform that is not OS/ARCH');
  const created = c.str(o.created, 'created', 64);
  if (!RFC3339.test(created) || Number.isNaN(Date.parse(created))) c.fail('field created is not an RFC 3339 time');
  let image: PackManifest['image'] = null;
  if (o.image !== null) {
    const i = c.obj(o.image, 'image');
    c.known(i, ['reference', 'digest'], 'image.');
    const digest = c.str(i.digest, 'image.digest', 80);
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) c.fail('field image.digest is not sha256:<64 hex>');
    image = { reference: c.str(i.reference, 'image.reference', 1024), digest };
  }
  const n = c.obj(o.network, 'network');
  c.known(n, ['net', 'allow_hosts', 'allow_cidrs'], 'network.');
  let artifact: PackArtifactProfile | null = null;
  if (o.artifact !== null) {
    const a = c.obj(o.artifact, 'artifact');
    c.known(a, ['cpus', 'memory_mib', 'entrypoint', 'oci_platform'], 'artifact.');
    artifact = {
      ...(a.cpus !== undefined ? { cpus: c.int(a.cpus, 'artifact.cpus', 1, 64) } : {}),
      ...(a.memory_mib !== undefined ? { memory_mib: c.int(a.memory_mib, 'artifact.memory_mib', 64, 1024 * 1024) } : {}),
      ...(a.entrypoint !== undefined ? { entrypoint: c.strings(a.entrypoint, 'artifact.entrypoint') } : {}),
      ...(a.oci_platform !== undefined ? { oci_platform: c.str(a.oci_platform, 'artifact.oci_platform', 64) } : {}),
    };
  }
  if (!Array.isArray(o.sections) || o.sections.length > MAX_SECTIONS) c.fail(`field sections is not a list of at most ${MAX_SECTIONS}`);
  const sections: PackSection[] = [];
  let end = 0;
  for (const [i, v] of (o.sections as unknown[]).entries()) {
    const s = c.obj(v, `sections[${i}]`);
    c.known(s, ['name', 'media_type', 'offset', 'size', 'sha256'], `sections[${i}].`);
    const name = c.str(s.name, `sections[${i}].name`, 32);
    if (!(SECTION_NAMES as string[]).includes(name)) c.fail(`names an unknown section ${JSON.stringify(name)} (made by a newer smolvm?)`);
    if (version < 2 && (SNAPSHOT_SECTIONS as string[]).includes(name)) c.fail(`names section ${name}, which format version ${version} does not have`);
    if (sections.some((x) => x.name === name)) c.fail(`names section ${name} twice`);
    const mediaType = c.str(s.media_type, `sections[${i}].media_type`, 128);
    if (mediaType !== SectionMediaType[name as SectionName]) c.fail(`gives section ${name} the media type ${mediaType}`);
    const offset = c.int(s.offset, `sections[${i}].offset`, 0, Number.MAX_SAFE_INTEGER);
    const size = c.int(s.size, `sections[${i}].size`, 1, Number.MAX_SAFE_INTEGER);
    if (offset % SECTION_ALIGN !== 0) c.fail(`places section ${name} at ${offset}, not a multiple of ${SECTION_ALIGN}`);
    if (offset < end || offset + size > manifestOffset) c.fail(`places section ${name} over another section or the manifest`);
    end = offset + size;
    const sha256 = c.str(s.sha256, `sections[${i}].sha256`, 64);
    if (!SHA256.test(sha256)) c.fail(`gives section ${name} a sha256 that is not 64 hex digits`);
    sections.push({ name: name as SectionName, media_type: mediaType, offset, size, sha256 });
  }
  for (const required of ['kernel', 'agent'] as const) if (!sections.some((s) => s.name === required)) c.fail(`has no ${required} section`);
  if (image && !sections.some((s) => s.name === 'rootfs')) c.fail('names an image but has no rootfs section');
  if (sections.some((s) => s.name === 'overlay') !== sections.some((s) => s.name === 'storage')) c.fail('has one of the overlay and storage disks without the other');
  const cpus = c.int(o.cpus, 'cpus', 1, 64);
  const memoryMib = c.int(o.memory_mib, 'memory_mib', 64, 1024 * 1024);
  const storageGib = c.int(o.storage_gib, 'storage_gib', 1, 16 * 1024);
  const overlayGib = c.int(o.overlay_gib, 'overlay_gib', 1, 16 * 1024);
  const snapshot = version >= 2 ? parseSnapshot(c, o.snapshot) : undefined;
  const size = (name: SectionName) => sections.find((s) => s.name === name)?.size;
  if (snapshot) {
    for (const required of ['memory', 'state', 'overlay', 'storage'] as const) if (size(required) === undefined) c.fail(`has a snapshot but no ${required} section`);
    // The restored guest's memory map has this size (QEMU would grow a short RAM file by writing to it).
    if (size('memory') !== memoryMib * MIB) c.fail(`has a memory section of ${size('memory')} bytes, not memory_mib (${memoryMib} MiB)`);
  }
  return {
    format: 'smolmachine',
    version,
    platform,
    host_platform: hostPlatform,
    created,
    smolvm_version: c.str(o.smolvm_version, 'smolvm_version', 64),
    image,
    from_vm: c.strOrNull(o.from_vm, 'from_vm'),
    entrypoint: c.strings(o.entrypoint, 'entrypoint'),
    cmd: c.strings(o.cmd, 'cmd'),
    env: c.strings(o.env, 'env'),
    workdir: c.strOrNull(o.workdir, 'workdir'),
    user: c.strOrNull(o.user, 'user'),
    cpus,
    memory_mib: memoryMib,
    storage_gib: storageGib,
    overlay_gib: overlayGib,
    network: { net: c.bool(n.net, 'network.net'), allow_hosts: c.strings(n.allow_hosts, 'network.allow_hosts'), allow_cidrs: c.strings(n.allow_cidrs, 'network.allow_cidrs') },
    artifact,
    ...(snapshot ? { snapshot } : {}),
    sections,
  };
}

const SNAPSHOT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}:[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function parseSnapshot(c: Checker, v: unknown): PackSnapshot {
  const s = c.obj(v, 'snapshot');
  c.known(s, ['id', 'driver', 'qemu', 'qemu_package'], 'snapshot.');
  const id = c.str(s.id, 'snapshot.id', 129);
  if (!SNAPSHOT_ID.test(id)) c.fail('field snapshot.id is not MACHINE:TAG');
  const q = c.obj(s.qemu, 'snapshot.qemu');
  c.known(q, ['major', 'minor', 'micro'], 'snapshot.qemu.');
  return {
    id,
    driver: c.str(s.driver, 'snapshot.driver', 64),
    qemu: { major: c.int(q.major, 'snapshot.qemu.major', 0, 1000), minor: c.int(q.minor, 'snapshot.qemu.minor', 0, 1000), micro: c.int(q.micro, 'snapshot.qemu.micro', 0, 1000) },
    qemu_package: c.str(s.qemu_package, 'snapshot.qemu_package', 256),
  };
}
