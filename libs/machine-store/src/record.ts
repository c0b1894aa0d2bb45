// The machine record (`machine.json`): what `machine create` decided, plus what the supervisor
// reports once the machine has been started. Plain JSON so other tools can read it.
import { JsonReader, SmolvmError, UsageError, isJsonObject, randomUUID, type JsonReaderOptions } from '@smolvm/common';
import type { PortMapping, VolumeMount } from '@smolvm/config';
import { validateMachineName } from './names';

export const SCHEMA_VERSION = 1;

/** Defaults from the reference: 4 vCPUs, 8192 MiB, 20 GiB storage, 2 GiB overlay, no network. */
export const MACHINE_DEFAULTS = {
  cpus: 4,
  memoryMiB: 8192,
  storageGiB: 20,
  overlayGiB: 2,
} as const;

/**
 * machine.json spells a volume `{host, guest, readOnly}` and a port `{host, guest}`; in memory a
 * record holds @smolvm/config's types. readRecord and machineRecordJson translate at the file.
 */
interface VolumeJson {
  host: string;
  guest: string;
  readOnly: boolean;
}
interface PortJson {
  host: number;
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

/** Thrown inside the validator; converted to the caller's error type with the path attached. */
class FieldError extends Error {}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string')
    return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 37) + '...' : value)}`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

const READER: JsonReaderOptions = {
  fail: (path, expected, actual) => new FieldError(`'${path}' must be ${expected}, got ${describe(actual)}`),
};

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
/** Paths, references and ids in a record; longer than any a file system or registry allows. */
const MAX_TEXT = 4096;

function text(r: JsonReader, key: string): string {
  return r.str(key, MAX_TEXT, 1);
}

function optionalText(r: JsonReader, key: string): string | undefined {
  return r.optStr(key, MAX_TEXT, 1);
}

function absolutePath(r: JsonReader, key: string): string {
  const v = text(r, key);
  if (!v.startsWith('/')) throw READER.fail(r.path(key), 'an absolute path', v);
  return v;
}

function timestamp(r: JsonReader, key: string): string {
  const v = r.raw[key];
  if (typeof v !== 'string' || !RFC3339.test(v) || Number.isNaN(Date.parse(v)))
    throw READER.fail(r.path(key), 'an RFC 3339 timestamp', v);
  return v;
}

function strings(
  r: JsonReader,
  key: string,
  check?: (s: string) => boolean,
  expected = 'a list of non-empty strings',
): string[] {
  return r.strArray(key, { minLength: 1 }, check, expected);
}

const isEnvEntry = (s: string): boolean => s.indexOf('=') > 0;

function readRuntime(r: JsonReader): MachineRuntime {
  const runtime: MachineRuntime = {
    pid: r.int('pid', 1),
    startTime: r.intOrNull('startTime', 0),
    socket: text(r, 'socket'),
    startedAt: timestamp(r, 'startedAt'),
  };
  if (r.has('stoppedAt')) runtime.stoppedAt = timestamp(r, 'stoppedAt');
  if (r.has('vm')) {
    const vm = r.obj('vm');
    runtime.vm = { pid: vm.int('pid', 1), startTime: vm.intOrNull('startTime', 0) };
  }
  return runtime;
}

/** Validates an untrusted value as a record; keeps only known keys so a rewrite stays clean. */
function readRecord(value: unknown): MachineRecord {
  if (!isJsonObject(value)) throw new FieldError(`expected a JSON object, got ${describe(value)}`);
  const r = new JsonReader(value, '', READER);
  // The version is checked first: a newer layout deserves "upgrade", not a list of odd fields.
  if (value.schemaVersion !== SCHEMA_VERSION) {
    throw new FieldError(`'schemaVersion' must be ${SCHEMA_VERSION}, got ${describe(value.schemaVersion)}`);
  }
  const name = text(r, 'name');
  try {
    validateMachineName(name);
  } catch (err) {
    throw new FieldError(`'name': ${(err as Error).message}`);
  }
  const record: MachineRecord = {
    schemaVersion: SCHEMA_VERSION,
    id: text(r, 'id'),
    name,
    createdAt: timestamp(r, 'createdAt'),
    cpus: r.int('cpus', 1, 1024),
    memoryMiB: r.int('memoryMiB', 1),
    storageGiB: r.int('storageGiB', 1),
    overlayGiB: r.int('overlayGiB', 1),
    net: r.bool('net'),
    allowHosts: strings(r, 'allowHosts'),
    allowCidrs: strings(r, 'allowCidrs'),
    volumes: r.array('volumes').map((v) => ({
      hostPath: text(v, 'host'),
      guestPath: absolutePath(v, 'guest'),
      readOnly: v.bool('readOnly'),
    })),
    ports: r.array('ports').map((p) => ({ hostPort: p.int('host', 1, 65535), guestPort: p.int('guest', 1, 65535) })),
    env: strings(r, 'env', isEnvEntry, 'a list of KEY=VALUE strings'),
    init: strings(r, 'init'),
    sshAgent: r.bool('sshAgent'),
  };
  // Optional keys are added only when present so the JSON round-trips without `undefined`s.
  const image = optionalText(r, 'image');
  if (image !== undefined) record.image = image;
  const from = optionalText(r, 'from');
  if (from !== undefined) record.from = from;
  const workdir = optionalText(r, 'workdir');
  if (workdir !== undefined) record.workdir = workdir;
  const imageDigest = optionalText(r, 'imageDigest');
  if (imageDigest !== undefined) {
    if (!/^sha256:[0-9a-f]{64}$/.test(imageDigest))
      throw new FieldError(`'imageDigest' must be sha256: followed by 64 lowercase hex digits`);
    record.imageDigest = imageDigest;
  }
  const user = optionalText(r, 'user');
  if (user !== undefined) record.user = user;
  if (r.has('health')) {
    const h = r.obj('health');
    record.health = {
      exec: strings(h, 'exec'),
      intervalMs: h.int('intervalMs', 1),
      timeoutMs: h.int('timeoutMs', 1),
      retries: h.int('retries', 0),
      startupGraceMs: h.int('startupGraceMs', 0),
    };
  }
  const smolfile = optionalText(r, 'smolfile');
  if (smolfile !== undefined) record.smolfile = smolfile;
  if (r.has('ephemeral')) {
    if (!r.bool('ephemeral')) throw new FieldError(`'ephemeral' must be true when present`);
    record.ephemeral = true;
  }
  const fromSnapshot = r.optStr('fromSnapshot');
  if (fromSnapshot !== undefined) record.fromSnapshot = fromSnapshot;
  if (r.has('runtime')) record.runtime = readRuntime(r.obj('runtime'));
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
    throw new MachineRecordError(file, `machine record ${file} is not valid JSON (${(err as Error).message})`, {
      remedy,
      cause: err,
    });
  }
  if (isJsonObject(value) && typeof value.schemaVersion === 'number' && value.schemaVersion > SCHEMA_VERSION) {
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
    throw new MachineRecordError(
      file,
      `machine record ${file} names machine "${record.name}" but lives in directory "${expectedName}"`,
      {
        remedy,
      },
    );
  }
  return record;
}

/** The record as machine.json holds it. */
export function machineRecordJson(
  record: MachineRecord,
): Omit<MachineRecord, 'volumes' | 'ports'> & { volumes: VolumeJson[]; ports: PortJson[] } {
  return {
    ...record,
    volumes: record.volumes.map((v) => ({ host: v.hostPath, guest: v.guestPath, readOnly: v.readOnly })),
    ports: record.ports.map((p) => ({ host: p.hostPort, guest: p.guestPort })),
  };
}

/**
 * Checks a record about to be written (from `create` or an `update` callback).
 * A bad value here is the caller's mistake, so it is a UsageError rather than a corrupt file.
 */
export function validateMachineRecord(record: MachineRecord): MachineRecord {
  try {
    // Round-trip through JSON: what is validated is exactly what will be on disk.
    return readRecord(JSON.parse(JSON.stringify(machineRecordJson(record))));
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
