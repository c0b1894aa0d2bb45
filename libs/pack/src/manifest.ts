// The pack manifest: every field the reference names (platform, host_platform, created,
// smolvm_version), the workload, resources, network policy, the Smolfile's [artifact] profile
// and the section table. Parsed strictly: a pack comes from someone else, and what it says
// decides what a VM boots and runs.
import { JsonReader, isJsonObject, type JsonReaderOptions } from '@smolvm/common';
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
 * How a section may be stored compressed (format version 3). Only sections that are extracted to
 * a file before use may be: the disks QEMU reads in place stay raw. The media type then ends in
 * `+<compression>`, as OCI layers name theirs.
 */
export const SECTION_COMPRESSIONS = ['gzip'] as const;
export type SectionCompression = (typeof SECTION_COMPRESSIONS)[number];
export const COMPRESSIBLE_SECTIONS: readonly SectionName[] = ['kernel'];
/** What a compressed section may inflate to: a hostile pack cannot make us write more. */
export const MAX_UNCOMPRESSED_BYTES = 512 * MIB;

/** The media type of a pack's runtime (format version 4): the packed executable's first bytes, not a section. */
export const RUNTIME_MEDIA_TYPE = 'application/vnd.smolvm.runtime.v1';
/** A runtime is a Node executable (~90 MB): this bounds what a pack can make us hash or copy. */
export const MAX_RUNTIME_BYTES = 512 * MIB;

/** The media type of a section as stored. */
export function sectionMediaType(name: SectionName, compression?: SectionCompression): string {
  return compression ? `${SectionMediaType[name]}+${compression}` : SectionMediaType[name];
}

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
  /** The saved VM has a network device: a machine resuming it gets one (unused unless its policy allows). */
  nic: boolean;
}

export interface PackSection {
  name: SectionName;
  media_type: string;
  /** From the payload's first byte; a multiple of SECTION_ALIGN. */
  offset: number;
  /** `size` and `sha256` are of the bytes as stored (compressed, if `compression`). */
  size: number;
  sha256: string;
  /** Version 3: the section is stored compressed; `uncompressed_*` describe what it inflates to. */
  compression?: SectionCompression;
  uncompressed_size?: number;
  uncompressed_sha256?: string;
}

/**
 * Format version 4: the guest's agent runs on the Node of the executable the pack was packed with,
 * read from its first `size` bytes (attached to the VM read-only), so the pack need not carry a
 * second Node. `sha256` is of exactly those bytes.
 */
export interface PackRuntime {
  media_type: typeof RUNTIME_MEDIA_TYPE;
  /** A multiple of SECTION_ALIGN, at most MAX_RUNTIME_BYTES. */
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
  /** Version 4 only, and absent (not null) without one, like `snapshot`. */
  runtime?: PackRuntime;
  sections: PackSection[];
}

/**
 * The manifest without its section table and runtime: what a writer is given (the runtime is
 * described by the writer's `runtime` option, from the executable's bytes).
 */
export type PackManifestBase = Omit<PackManifest, 'format' | 'version' | 'sections' | 'runtime'>;

/**
 * The version a manifest is written as: the lowest that has what it carries (4 with a runtime, else
 * 3 with a compressed section, else 2 with a snapshot, else 1), so older readers keep reading what
 * they can.
 */
export function manifestVersion(
  manifest: Pick<PackManifestBase, 'snapshot'>,
  compressed = false,
  runtime = false,
): number {
  return runtime ? 4 : compressed ? 3 : manifest.snapshot ? 2 : 1;
}

/** Why a runtime's size or sha256 cannot be one (undefined when it can): shared by the reader and the writer. */
export function runtimeShapeProblem(runtime: { size: number; sha256: string }): string | undefined {
  if (!Number.isSafeInteger(runtime.size) || runtime.size <= 0 || runtime.size % SECTION_ALIGN !== 0)
    return `has a runtime size ${runtime.size} that is not a positive multiple of ${SECTION_ALIGN}`;
  if (runtime.size > MAX_RUNTIME_BYTES)
    return `has a runtime of ${runtime.size} bytes, over the ${MAX_RUNTIME_BYTES}-byte bound`;
  if (!SHA256.test(runtime.sha256)) return 'gives the runtime a sha256 that is not 64 lowercase hex digits';
  return undefined;
}

const MANIFEST_KEYS = [
  'format',
  'version',
  'platform',
  'host_platform',
  'created',
  'smolvm_version',
  'image',
  'from_vm',
  'entrypoint',
  'cmd',
  'env',
  'workdir',
  'user',
  'cpus',
  'memory_mib',
  'storage_gib',
  'overlay_gib',
  'network',
  'artifact',
  'sections',
];
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const PLATFORM = /^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/;
const SHA256 = /^[0-9a-f]{64}$/;

/**
 * Parses and checks a manifest: known fields only, types and bounds, and a section table whose
 * sections are aligned, in order, non-overlapping and end before `manifestOffset`.
 */
export function parseManifest(bytes: Buffer, file: string, manifestOffset: number): PackManifest {
  const fail = (why: string): never => {
    throw new PackFormatError(file, `its manifest ${why}`);
  };
  const options: JsonReaderOptions = {
    fail: (path, expected) => new PackFormatError(file, `its manifest field ${path} is not ${expected}`),
    rejectNul: true,
  };
  const known = (r: JsonReader, keys: string[]): void => {
    const unknown = r.unknownKeys(keys);
    if (unknown.length > 0) fail(`has an unknown field ${unknown[0]}`);
  };
  const strings = (r: JsonReader, key: string): string[] => r.strArray(key, { maxItems: 4096, maxLength: 4096 });
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    fail('is not JSON');
  }
  if (!isJsonObject(raw)) return fail('field (top level) is not an object');
  const o = new JsonReader(raw, '', options);
  if (raw.format !== 'smolmachine') fail('does not say format "smolmachine"');
  const version = o.int('version', 1, Math.max(...PACK_READ_VERSIONS));
  known(o, [...MANIFEST_KEYS, ...(version >= 2 ? ['snapshot'] : []), ...(version >= 4 ? ['runtime'] : [])]);
  const platform = o.str('platform', 64);
  const hostPlatform = o.str('host_platform', 64);
  if (!PLATFORM.test(platform) || !PLATFORM.test(hostPlatform)) fail('has a platform that is not OS/ARCH');
  const created = o.str('created', 64);
  if (!RFC3339.test(created) || Number.isNaN(Date.parse(created))) fail('field created is not an RFC 3339 time');
  let image: PackManifest['image'] = null;
  if (raw.image !== null) {
    const i = o.obj('image');
    known(i, ['reference', 'digest']);
    const digest = i.str('digest', 80);
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) fail('field image.digest is not sha256:<64 hex>');
    image = { reference: i.str('reference', 1024), digest };
  }
  const n = o.obj('network');
  known(n, ['net', 'allow_hosts', 'allow_cidrs']);
  let artifact: PackArtifactProfile | null = null;
  if (raw.artifact !== null) {
    const a = o.obj('artifact');
    known(a, ['cpus', 'memory_mib', 'entrypoint', 'oci_platform']);
    artifact = {
      ...(a.has('cpus') ? { cpus: a.int('cpus', 1, 64) } : {}),
      ...(a.has('memory_mib') ? { memory_mib: a.int('memory_mib', 64, 1024 * 1024) } : {}),
      ...(a.has('entrypoint') ? { entrypoint: strings(a, 'entrypoint') } : {}),
      ...(a.has('oci_platform') ? { oci_platform: a.str('oci_platform', 64) } : {}),
    };
  }
  const sections: PackSection[] = [];
  let end = 0;
  for (const s of o.array('sections', MAX_SECTIONS)) {
    const compressed = version >= 3 && s.has('compression');
    known(
      s,
      compressed
        ? ['name', 'media_type', 'offset', 'size', 'sha256', 'compression', 'uncompressed_size', 'uncompressed_sha256']
        : ['name', 'media_type', 'offset', 'size', 'sha256'],
    );
    const name = s.str('name', 32);
    if (!(SECTION_NAMES as string[]).includes(name))
      fail(`names an unknown section ${JSON.stringify(name)} (made by a newer smolvm?)`);
    if (version < 2 && (SNAPSHOT_SECTIONS as string[]).includes(name))
      fail(`names section ${name}, which format version ${version} does not have`);
    if (sections.some((x) => x.name === name)) fail(`names section ${name} twice`);
    let compression: SectionCompression | undefined;
    if (compressed) {
      const c = s.str('compression', 32);
      if (!(SECTION_COMPRESSIONS as readonly string[]).includes(c))
        fail(
          `stores section ${name} compressed with ${JSON.stringify(c)}, which this smolvm cannot decompress (made by a newer smolvm?)`,
        );
      if (!COMPRESSIBLE_SECTIONS.includes(name as SectionName))
        fail(`stores section ${name} compressed, and it must be stored raw (it is used in place)`);
      compression = c as SectionCompression;
    }
    const mediaType = s.str('media_type', 128);
    if (mediaType !== sectionMediaType(name as SectionName, compression))
      fail(`gives section ${name} the media type ${mediaType}`);
    const offset = s.int('offset', 0);
    const size = s.int('size', 1);
    if (offset % SECTION_ALIGN !== 0) fail(`places section ${name} at ${offset}, not a multiple of ${SECTION_ALIGN}`);
    if (offset < end || offset + size > manifestOffset)
      fail(`places section ${name} over another section or the manifest`);
    end = offset + size;
    const sha256 = s.str('sha256', 64);
    if (!SHA256.test(sha256)) fail(`gives section ${name} a sha256 that is not 64 hex digits`);
    const section: PackSection = { name: name as SectionName, media_type: mediaType, offset, size, sha256 };
    if (compression) {
      const uncompressedSha256 = s.str('uncompressed_sha256', 64);
      if (!SHA256.test(uncompressedSha256))
        fail(`gives section ${name} an uncompressed_sha256 that is not 64 hex digits`);
      section.compression = compression;
      section.uncompressed_size = s.int('uncompressed_size', 1, MAX_UNCOMPRESSED_BYTES);
      section.uncompressed_sha256 = uncompressedSha256;
    }
    sections.push(section);
  }
  for (const required of ['kernel', 'agent'] as const)
    if (!sections.some((s) => s.name === required)) fail(`has no ${required} section`);
  if (image && !sections.some((s) => s.name === 'rootfs')) fail('names an image but has no rootfs section');
  if (sections.some((s) => s.name === 'overlay') !== sections.some((s) => s.name === 'storage'))
    fail('has one of the overlay and storage disks without the other');
  const cpus = o.int('cpus', 1, 64);
  const memoryMib = o.int('memory_mib', 64, 1024 * 1024);
  const storageGib = o.int('storage_gib', 1, 16 * 1024);
  const overlayGib = o.int('overlay_gib', 1, 16 * 1024);
  // Required in version 2 (what it was made for); optional in version 3.
  const snapshot =
    version === 2 || (version >= 3 && o.has('snapshot')) ? parseSnapshot(o.obj('snapshot'), known, fail) : undefined;
  // Absent, never null: what the writer writes.
  const runtime = version >= 4 && o.raw.runtime !== undefined ? parseRuntime(o.obj('runtime'), known, fail) : undefined;
  const size = (name: SectionName) => sections.find((s) => s.name === name)?.size;
  const stray = sections.find((s) => SNAPSHOT_SECTIONS.includes(s.name));
  if (!snapshot && stray) fail(`names section ${stray.name} but has no snapshot`);
  if (snapshot) {
    for (const required of ['memory', 'state', 'overlay', 'storage'] as const)
      if (size(required) === undefined) fail(`has a snapshot but no ${required} section`);
    // The restored guest's memory map has this size (QEMU would grow a short RAM file by writing to it).
    if (size('memory') !== memoryMib * MIB)
      fail(`has a memory section of ${size('memory')} bytes, not memory_mib (${memoryMib} MiB)`);
  }
  return {
    format: 'smolmachine',
    version,
    platform,
    host_platform: hostPlatform,
    created,
    smolvm_version: o.str('smolvm_version', 64),
    image,
    from_vm: nullableStr(o, 'from_vm'),
    entrypoint: strings(o, 'entrypoint'),
    cmd: strings(o, 'cmd'),
    env: strings(o, 'env'),
    workdir: nullableStr(o, 'workdir'),
    user: nullableStr(o, 'user'),
    cpus,
    memory_mib: memoryMib,
    storage_gib: storageGib,
    overlay_gib: overlayGib,
    network: { net: n.bool('net'), allow_hosts: strings(n, 'allow_hosts'), allow_cidrs: strings(n, 'allow_cidrs') },
    artifact,
    ...(snapshot ? { snapshot } : {}),
    ...(runtime ? { runtime } : {}),
    sections,
  };
}

function parseRuntime(
  r: JsonReader,
  known: (r: JsonReader, keys: string[]) => void,
  fail: (why: string) => never,
): PackRuntime {
  known(r, ['media_type', 'size', 'sha256']);
  const mediaType = r.str('media_type', 128);
  if (mediaType !== RUNTIME_MEDIA_TYPE) fail(`gives the runtime the media type ${mediaType}`);
  const runtime: PackRuntime = { media_type: RUNTIME_MEDIA_TYPE, size: r.int('size', 1), sha256: r.str('sha256', 64) };
  const problem = runtimeShapeProblem(runtime);
  if (problem) fail(problem);
  return runtime;
}

/** null stays null; a missing field is an error, as the writer always writes these. */
function nullableStr(r: JsonReader, key: string): string | null {
  return r.raw[key] === null ? null : r.str(key);
}

const SNAPSHOT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}:[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function parseSnapshot(
  s: JsonReader,
  known: (r: JsonReader, keys: string[]) => void,
  fail: (why: string) => never,
): PackSnapshot {
  known(s, ['id', 'driver', 'qemu', 'qemu_package', 'nic']);
  const id = s.str('id', 129);
  if (!SNAPSHOT_ID.test(id)) fail('field snapshot.id is not MACHINE:TAG');
  const q = s.obj('qemu');
  known(q, ['major', 'minor', 'micro']);
  return {
    id,
    driver: s.str('driver', 64),
    qemu: { major: q.int('major', 0, 1000), minor: q.int('minor', 0, 1000), micro: q.int('micro', 0, 1000) },
    qemu_package: s.str('qemu_package', 256),
    nic: s.bool('nic'),
  };
}
