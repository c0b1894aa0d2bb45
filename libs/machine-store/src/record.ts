// The machine record (`machine.json`): what `machine create` decided, plus what the supervisor
// reports once the machine has been started. Plain JSON so other tools can read it.
import { SmolvmError, UsageError, randomUUID } from '@smolvm/common';
import { validateMachineName } from './names';

export const SCHEMA_VERSION = 1;

/** Defaults from the reference: 4 vCPUs, 8192 MiB, 20 GiB storage, 2 GiB overlay, no network. */
export const MACHINE_DEFAULTS = {
  cpus: 4,
  memoryMiB: 8192,
  storageGiB: 20,
  overlayGiB: 2,
} as const;

export interface VolumeMount {
  /** Host directory (absolute once resolved by the caller). */
  host: string;
  /** Mount point inside the guest (absolute). */
  guest: string;
  readOnly: boolean;
}

export interface PortMapping {
  /** TCP port on the host. */
  host: number;
  /** TCP port in the guest. */
  guest: number;
}

/** Written by the supervisor; kept after it exits so "stopped" can be told from "created". */
export interface MachineRuntime {
  /** Supervisor process id. */
  pid: number;
  /** Supervisor start time (clock ticks since boot); null where /proc is absent. */
  startTime: number | null;
  /** Unix socket the supervisor listens on. */
  socket: string;
  /** RFC 3339. */
  startedAt: string;
  /** RFC 3339; set by a supervisor that shut down cleanly. */
  stoppedAt?: string;
  /** The hypervisor process the supervisor runs, so a stuck or orphaned VM can still be ended. */
  vm?: { pid: number; startTime: number | null };
}

/** `[health]` of the Smolfile, kept for `machine monitor`. */
export interface MachineHealthCheck {
  exec: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startupGraceMs: number;
}

export interface MachineRecord {
  schemaVersion: typeof SCHEMA_VERSION;
  /** Random id: tells a re-created machine from an older one of the same name. */
  id: string;
  name: string;
  /** RFC 3339. */
  createdAt: string;
  /** OCI image reference; absent for a bare VM. */
  image?: string;
  /**
   * Manifest digest the image resolved to at creation. The overlay disk only makes sense on top
   * of exactly that image, so later starts use it even if the tag has moved.
   */
  imageDigest?: string;
  /** `.smolmachine` artifact the machine was created from. */
  from?: string;
  cpus: number;
  memoryMiB: number;
  storageGiB: number;
  overlayGiB: number;
  /** Outbound networking; true whenever an allow list is non-empty (they imply --net). */
  net: boolean;
  allowHosts: string[];
  allowCidrs: string[];
  volumes: VolumeMount[];
  ports: PortMapping[];
  /** `KEY=VALUE` entries, in merge order. */
  env: string[];
  workdir?: string;
  /** User commands run as (from the image config), e.g. `1000:1000`. */
  user?: string;
  /** Commands run on every start. */
  init: string[];
  sshAgent: boolean;
  /** Smolfile the machine was created from. */
  smolfile?: string;
  health?: MachineHealthCheck;
  /**
   * Made by `machine run -d`: removed with its disks when it stops, never started again.
   * Absent (not false) on persistent machines, so their records are unchanged.
   */
  ephemeral?: true;
  /**
   * A fork: the snapshot (`<machine>:<tag>`) its disks are copy-on-write over (qcow2 files whose
   * backing files are the snapshot's), so the snapshot cannot be removed while this machine exists.
   */
  fromSnapshot?: string;
  runtime?: MachineRuntime;
}

/** What `create` needs: the name, and any settings that differ from the defaults. */
export type NewMachine = { name: string } & Partial<Omit<MachineRecord, 'schemaVersion' | 'id' | 'name' | 'createdAt'>>;

/** A machine.json that cannot be used. Names the file so the user knows what to fix. */
export class MachineRecordError extends SmolvmError {
  readonly file: string;
  constructor(file: string, message: string, options: { remedy?: string; cause?: unknown } = {}) {
    super(message, options);
    this.file = file;
  }
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** Thrown inside the validator; converted to the caller's error type with the path attached. */
class FieldError extends Error {}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 37) + '...' : value)}`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

class Reader {
  constructor(private readonly obj: JsonObject, private readonly prefix = '') {}

  private fail(key: string, expected: string): never {
    throw new FieldError(`'${this.prefix}${key}' must be ${expected}, got ${describe(this.obj[key])}`);
  }

  has(key: string): boolean {
    return this.obj[key] !== undefined;
  }

  string(key: string): string {
    const v = this.obj[key];
    if (typeof v !== 'string' || v.length === 0) this.fail(key, 'a non-empty string');
    return v;
  }

  absolutePath(key: string): string {
    const v = this.string(key);
    if (!v.startsWith('/')) this.fail(key, 'an absolute path');
    return v;
  }

  optionalString(key: string): string | undefined {
    return this.has(key) ? this.string(key) : undefined;
  }

  timestamp(key: string): string {
    const v = this.obj[key];
    if (typeof v !== 'string' || !RFC3339.test(v) || Number.isNaN(Date.parse(v))) this.fail(key, 'an RFC 3339 timestamp');
    return v;
  }

  bool(key: string): boolean {
    const v = this.obj[key];
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v;
  }

  int(key: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.obj[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.fail(key, max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`);
    }
    return v;
  }

  /** An integer, or null where the writer could not know the value. */
  intOrNull(key: string, min: number): number | null {
    return this.obj[key] === null ? null : this.int(key, min);
  }

  strings(key: string, check?: (s: string) => boolean, expected = 'a list of non-empty strings'): string[] {
    const v = this.obj[key];
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string' && s.length > 0 && (!check || check(s)))) {
      this.fail(key, expected);
    }
    return [...(v as string[])];
  }

  objects<T>(key: string, each: (r: Reader) => T): T[] {
    const v = this.obj[key];
    if (!Array.isArray(v)) this.fail(key, 'a list');
    return v.map((item, i) => {
      if (!isObject(item)) throw new FieldError(`'${this.prefix}${key}[${i}]' must be an object, got ${describe(item)}`);
      return each(new Reader(item, `${this.prefix}${key}[${i}].`));
    });
  }

  object<T>(key: string, read: (r: Reader) => T): T {
    const v = this.obj[key];
    if (!isObject(v)) this.fail(key, 'an object');
    return read(new Reader(v, `${this.prefix}${key}.`));
  }
}

const isEnvEntry = (s: string): boolean => s.indexOf('=') > 0;

function readRuntime(r: Reader): MachineRuntime {
  const runtime: MachineRuntime = {
    pid: r.int('pid', 1),
    startTime: r.intOrNull('startTime', 0),
    socket: r.string('socket'),
    startedAt: r.timestamp('startedAt'),
  };
  if (r.has('stoppedAt')) runtime.stoppedAt = r.timestamp('stoppedAt');
  if (r.has('vm')) runtime.vm = r.object('vm', (v) => ({ pid: v.int('pid', 1), startTime: v.intOrNull('startTime', 0) }));
  return runtime;
}

/** Validates an untrusted value as a record; keeps only known keys so a rewrite stays clean. */
function readRecord(value: unknown): MachineRecord {
  if (!isObject(value)) throw new FieldError(`expected a JSON object, got ${describe(value)}`);
  const r = new Reader(value);
  // The version is checked first: a newer layout deserves "upgrade", not a list of odd fields.
  if (value.schemaVersion !== SCHEMA_VERSION) {
    throw new FieldError(`'schemaVersion' must be ${SCHEMA_VERSION}, got ${describe(value.schemaVersion)}`);
  }
  const name = r.string('name');
  try {
    validateMachineName(name);
  } catch (err) {
    throw new FieldError(`'name': ${(err as Error).message}`);
  }
  const record: MachineRecord = {
    schemaVersion: SCHEMA_VERSION,
    id: r.string('id'),
    name,
    createdAt: r.timestamp('createdAt'),
    cpus: r.int('cpus', 1, 1024),
    memoryMiB: r.int('memoryMiB', 1),
    storageGiB: r.int('storageGiB', 1),
    overlayGiB: r.int('overlayGiB', 1),
    net: r.bool('net'),
    allowHosts: r.strings('allowHosts'),
    allowCidrs: r.strings('allowCidrs'),
    volumes: r.objects('volumes', (v) => ({
      host: v.string('host'),
      guest: v.absolutePath('guest'),
      readOnly: v.bool('readOnly'),
    })),
    ports: r.objects('ports', (p) => ({ host: p.int('host', 1, 65535), guest: p.int('guest', 1, 65535) })),
    env: r.strings('env', isEnvEntry, 'a list of KEY=VALUE strings'),
    init: r.strings('init'),
    sshAgent: r.bool('sshAgent'),
  };
  // Optional keys are added only when present so the JSON round-trips without `undefined`s.
  const image = r.optionalString('image');
  if (image !== undefined) record.image = image;
  const from = r.optionalString('from');
  if (from !== undefined) record.from = from;
  const workdir = r.optionalString('workdir');
  if (workdir !== undefined) record.workdir = workdir;
  const imageDigest = r.optionalString('imageDigest');
  if (imageDigest !== undefined) {
    if (!/^sha256:[0-9a-f]{64}$/.test(imageDigest)) throw new FieldError(`'imageDigest' must be sha256: followed by 64 lowercase hex digits`);
    record.imageDigest = imageDigest;
  }
  const user = r.optionalString('user');
  if (user !== undefined) record.user = user;
  if (r.has('health')) {
    record.health = r.object('health', (h) => ({
      exec: h.strings('exec'),
      intervalMs: h.int('intervalMs', 1),
      timeoutMs: h.int('timeoutMs', 1),
      retries: h.int('retries', 0),
      startupGraceMs: h.int('startupGraceMs', 0),
    }));
  }
  const smolfile = r.optionalString('smolfile');
  if (smolfile !== undefined) record.smolfile = smolfile;
  if (r.has('ephemeral')) {
    if (!r.bool('ephemeral')) throw new FieldError(`'ephemeral' must be true when present`);
    record.ephemeral = true;
  }
  const fromSnapshot = r.optionalString('fromSnapshot');
  if (fromSnapshot !== undefined) record.fromSnapshot = fromSnapshot;
  if (r.has('runtime')) record.runtime = r.object('runtime', readRuntime);
  return record;
}

/**
 * Parses the text of a machine.json. Every failure is a MachineRecordError naming `file`.
 * `expectedName` is the directory the file was found in: a record that claims another name
 * was copied or renamed by hand, and trusting either name would be a guess.
 */
export function parseMachineRecord(text: string, file: string, expectedName?: string): MachineRecord {
  const remedy = expectedName
    ? `fix or remove the file, or remove the machine with \`smolvm machine delete ${expectedName}\``
    : 'fix or remove the file';
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new MachineRecordError(file, `machine record ${file} is not valid JSON (${(err as Error).message})`, { remedy, cause: err });
  }
  if (isObject(value) && typeof value.schemaVersion === 'number' && value.schemaVersion > SCHEMA_VERSION) {
    throw new MachineRecordError(
      file,
      `machine record ${file} has schema version ${value.schemaVersion}; this smolvm understands version ${SCHEMA_VERSION}`,
      { remedy: 'upgrade smolvm to the version that created this machine' },
    );
  }
  let record: MachineRecord;
  try {
    record = readRecord(value);
  } catch (err) {
    if (!(err instanceof FieldError)) throw err;
    throw new MachineRecordError(file, `machine record ${file} is invalid: ${err.message}`, { remedy });
  }
  if (expectedName !== undefined && record.name !== expectedName) {
    throw new MachineRecordError(file, `machine record ${file} names machine "${record.name}" but lives in directory "${expectedName}"`, {
      remedy,
    });
  }
  return record;
}

/**
 * Checks a record about to be written (from `create` or an `update` callback).
 * A bad value here is the caller's mistake, so it is a UsageError rather than a corrupt file.
 */
export function validateMachineRecord(record: MachineRecord): MachineRecord {
  try {
    // Round-trip through JSON: what is validated is exactly what will be on disk.
    return readRecord(JSON.parse(JSON.stringify(record)));
  } catch (err) {
    if (!(err instanceof FieldError)) throw err;
    throw new UsageError(`invalid machine settings: ${err.message}`, { remedy: 'correct the value and retry' });
  }
}

/** A complete record for a new machine: defaults filled in, id and creation time assigned. */
export function newMachineRecord(input: NewMachine, now: Date = new Date()): MachineRecord {
  validateMachineName(input.name);
  const allowHosts = input.allowHosts ?? [];
  const allowCidrs = input.allowCidrs ?? [];
  const record: MachineRecord = {
    schemaVersion: SCHEMA_VERSION,
    id: randomUUID(),
    name: input.name,
    createdAt: now.toISOString(),
    cpus: input.cpus ?? MACHINE_DEFAULTS.cpus,
    memoryMiB: input.memoryMiB ?? MACHINE_DEFAULTS.memoryMiB,
    storageGiB: input.storageGiB ?? MACHINE_DEFAULTS.storageGiB,
    overlayGiB: input.overlayGiB ?? MACHINE_DEFAULTS.overlayGiB,
    // The reference: --allow-host and --allow-cidr imply --net.
    net: (input.net ?? false) || allowHosts.length > 0 || allowCidrs.length > 0,
    allowHosts,
    allowCidrs,
    volumes: input.volumes ?? [],
    ports: input.ports ?? [],
    env: input.env ?? [],
    init: input.init ?? [],
    sshAgent: input.sshAgent ?? false,
  };
  if (input.image !== undefined) record.image = input.image;
  if (input.from !== undefined) record.from = input.from;
  if (input.workdir !== undefined) record.workdir = input.workdir;
  if (input.imageDigest !== undefined) record.imageDigest = input.imageDigest;
  if (input.user !== undefined) record.user = input.user;
  if (input.health !== undefined) record.health = input.health;
  if (input.smolfile !== undefined) record.smolfile = input.smolfile;
  if (input.ephemeral) record.ephemeral = true;
  if (input.fromSnapshot !== undefined) record.fromSnapshot = input.fromSnapshot;
  if (input.runtime !== undefined) record.runtime = input.runtime;
  return validateMachineRecord(record);
}
