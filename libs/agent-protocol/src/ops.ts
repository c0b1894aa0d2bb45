// Requests, their results and events, as typed values and as validated wire objects.
// The host validates everything the agent sends; the agent validates what the host sends so
// that a bad request gets a `bad-request` answer instead of undefined behaviour.
import { isIPv4 } from 'node:net';
import { Fields, SchemaError, type Json } from './schema';

/** A block device in the guest: by virtio-blk serial (preferred) or by device path. */
export type BlockDeviceRef = { serial: string } | { path: string };

export interface TtyOptions {
  rows: number;
  cols: number;
  /** TERM for the process; defaults to xterm-256color. */
  term?: string;
}

export interface ExecOptions {
  argv: string[];
  /** Variables on top of the agent's defaults (PATH, HOME of the user, TERM in tty mode). */
  env?: Record<string, string>;
  /** Absolute working directory inside the guest root; default `/`. */
  cwd?: string;
  /** `name`, `uid` or `uid:gid`, resolved against the guest root's /etc/passwd and /etc/group. */
  user?: string;
  /** Keep stdin open (`-i`); otherwise the process reads /dev/null. */
  stdin?: boolean;
  /** Run on a pseudo-terminal (`-t`): stdout carries the merged output, stderr stays empty. */
  tty?: TtyOptions;
}

/** How a process ended: exactly one of `code` and `signal` is non-null. */
export interface ExitStatus {
  code: number | null;
  /** Signal name, e.g. SIGKILL. The host maps it to 128+n for its own exit code. */
  signal: string | null;
}

/**
 * The guest's half of a volume (wire shape of `setup.volumes`): which share to mount where. The
 * volume the user asked for, host path and all, is @smolvm/config's VolumeMount.
 */
export interface VolumeMount {
  /** The virtio-9p mount tag QEMU exposes the share under. */
  tag: string;
  /** Absolute path in the guest root; created when missing. */
  path: string;
  readOnly?: boolean;
}

export interface DiskMount {
  device: BlockDeviceRef;
  /** Filesystem on the device, e.g. ext4. */
  fstype: string;
}

export interface SetupSpec {
  hostname?: string;
  /**
   * The image root: an erofs (or other read-only) filesystem on a disk, mounted as the lower
   * layer of an overlay. Absent: a bare VM, whose root is the agent image's own userland.
   */
  image?: { device: BlockDeviceRef; fstype?: string };
  /**
   * The root is this 9p share itself, writable, with no overlay (a container's rootfs that the
   * host prepared, e.g. containerd's snapshot): what the guest writes lands in it. Excludes
   * `image`, `upper`, `upperSizeMiB` and `workspace`.
   */
  rootShare?: { tag: string };
  /** Where the overlay's writable layer lives. Absent: tmpfs, discarded at power-off. */
  upper?: DiskMount & { /** Directory on that filesystem holding upper/ and work/. */ dir?: string };
  /** Size of the tmpfs upper layer in MiB; default: the kernel's (half of RAM). */
  upperSizeMiB?: number;
  /** Disk holding /workspace. Absent: /workspace is a directory in the root. */
  workspace?: DiskMount;
  volumes?: VolumeMount[];
  /** Content of /etc/resolv.conf in the guest root; default: a comment saying there is no network. */
  resolvConf?: string;
  /** Static IPv4 configuration of the VM's NIC (and `lo` up). Absent: the VM has no network. */
  network?: GuestNetwork;
  /**
   * Forward the host's SSH agent: the agent listens on this unix socket path in the guest root,
   * sets SSH_AUTH_SOCK to it for every exec, and relays each connection to the host (event
   * `sshAgentConnect`).
   */
  sshAgent?: { socket: string };
  /**
   * `fresh`: every exec runs in a root of its own, an overlay over the machine's root whose
   * writes are discarded when the exec ends (a packed executable's daemon mode); /workspace and
   * the volumes are shared. Absent: every exec runs in the machine's root.
   */
  execRoot?: 'fresh';
}

export interface GuestNetwork {
  /** IPv4 address of the guest. */
  ip: string;
  prefix: number;
  /** Default route and DNS server. */
  gateway: string;
  mtu: number;
  /** Picks the interface when the VM has several; default: the first one that is not `lo`. */
  mac?: string;
}

/** Event `sshAgentConnect`: a guest client connected; both streams are allocated by the agent. */
export interface RelayConnectEvent {
  /** Agent -> host bytes (what the guest client wrote). */
  toHost: number;
  /** Host -> agent bytes (what the host's agent answered). */
  fromHost: number;
}

export function parseRelayConnect(args: Json, op: string): RelayConnectEvent {
  const f = new Fields(args, op);
  const toHost = f.int('toHost', 1);
  const fromHost = f.int('fromHost', 1);
  if (toHost >= fromHost) throw new SchemaError(`${op}: toHost must be allocated before fromHost`);
  return { toHost, fromHost };
}

export interface SetTimeArgs {
  epochMs: number;
}

/** Most entropy one reseed request carries: far more than the kernel's pool needs (256 bits). */
export const MAX_RESEED_BYTES = 512;

/** Wire form of an exec request: the options plus the stream ids the host opened for it. */
export interface ExecRequest extends ExecOptions {
  env: Record<string, string>;
  stdin: boolean;
  streams: { stdin: number | null; stdout: number; stderr: number };
}

export function encodeExec(opts: ExecOptions, streams: ExecRequest['streams']): Json {
  return {
    argv: opts.argv,
    env: opts.env ?? {},
    ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
    ...(opts.user !== undefined ? { user: opts.user } : {}),
    stdin: streams.stdin,
    stdout: streams.stdout,
    stderr: streams.stderr,
    ...(opts.tty ? { tty: { rows: opts.tty.rows, cols: opts.tty.cols, term: opts.tty.term ?? 'xterm-256color' } } : {}),
  };
}

export function parseExec(args: Json): ExecRequest {
  const f = new Fields(args, 'exec');
  const argv = f.strArray('argv');
  if (argv.length === 0 || argv[0] === '') throw new SchemaError('exec.argv: expected at least the program name');
  const env = f.has('env') ? f.strMap('env') : {};
  for (const k of Object.keys(env))
    if (k === '' || k.includes('=') || k.includes('\0'))
      throw new SchemaError(`exec.env: invalid variable name '${k}'`);
  const stdin = f.has('stdin') ? f.int('stdin', 1) : null;
  const tty = f.optObj('tty');
  return {
    argv,
    env,
    cwd: f.optStr('cwd'),
    user: f.optStr('user', 256),
    stdin: stdin !== null,
    streams: { stdin, stdout: f.int('stdout', 1), stderr: f.int('stderr', 1) },
    ...(tty
      ? {
          tty: {
            rows: tty.int('rows', 1, 0xffff),
            cols: tty.int('cols', 1, 0xffff),
            term: tty.optStr('term', 128) ?? 'xterm-256color',
          },
        }
      : {}),
  };
}

export function parseExecResult(result: Json): { pid: number } {
  return { pid: new Fields(result, 'exec result').int('pid', 1, 2 ** 31) };
}

export function parseExitEvent(args: Json): { session: number; error?: string } & ExitStatus {
  const f = new Fields(args, 'exit');
  const code = f.intOrNull('code', 0, 255);
  const signal = f.strOrNull('signal', 32);
  if ((code === null) === (signal === null)) throw new SchemaError('exit: expected exactly one of code and signal');
  // Set when the agent lost track of the process (a relay whose VM went away): no real status.
  const error = f.optStr('error', 1024);
  return { session: f.int('session', 1), code, signal, ...(error !== undefined ? { error } : {}) };
}

export function parseSession(args: Json, op: string): number {
  return new Fields(args, op).int('session', 1);
}

export function parseSignal(args: Json): { session: number; signal: string } {
  const f = new Fields(args, 'signal');
  const signal = f.str('signal', 32);
  if (!/^SIG[A-Z0-9]+$/.test(signal)) throw new SchemaError(`signal.signal: '${signal}' is not a signal name`);
  return { session: f.int('session', 1), signal };
}

export function parseResize(args: Json): { session: number; rows: number; cols: number } {
  const f = new Fields(args, 'resize');
  return { session: f.int('session', 1), rows: f.int('rows', 1, 0xffff), cols: f.int('cols', 1, 0xffff) };
}

export function parseSetTime(args: Json): SetTimeArgs {
  return { epochMs: new Fields(args, 'setTime').int('epochMs', 0) };
}

/** `identity`: a copy restored from a machine snapshot takes its own name (snapshot forks). */
export function parseIdentity(args: Json): { hostname: string } {
  const hostname = new Fields(args, 'identity').str('hostname', 64);
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(hostname))
    throw new SchemaError(`identity.hostname: '${hostname}' is not a hostname`);
  return { hostname };
}

/** `shares`: unmount (false) or mount again (true) the run's 9p volumes (around a machine snapshot). */
export function parseShares(args: Json): { mounted: boolean } {
  return { mounted: new Fields(args, 'shares').bool('mounted') };
}

/** `reseed` carries host entropy base64-encoded: 32 to MAX_RESEED_BYTES bytes. */
export function parseReseed(args: Json): { entropy: Buffer } {
  const text = new Fields(args, 'reseed').str('entropy', Math.ceil(MAX_RESEED_BYTES / 3) * 4);
  const entropy = Buffer.from(text, 'base64');
  if (entropy.length < 32 || entropy.toString('base64') !== text)
    throw new SchemaError('reseed.entropy: expected 32 or more bytes, base64-encoded');
  return { entropy };
}

function parseDevice(f: Fields): BlockDeviceRef {
  const serial = f.optStr('serial', 20);
  const path = f.optStr('path', 256);
  if ((serial === undefined) === (path === undefined))
    throw new SchemaError('device: expected exactly one of serial and path');
  if (path !== undefined && !/^\/dev\/[A-Za-z0-9._/-]+$/.test(path))
    throw new SchemaError(`device.path: '${path}' is not under /dev`);
  return serial !== undefined ? { serial } : { path: path as string };
}

function parseDiskMount(f: Fields): DiskMount {
  return { device: parseDevice(f.obj('device')), fstype: parseFstype(f.str('fstype', 32)) };
}

function parseFstype(fstype: string): string {
  if (!/^[a-z0-9]+$/.test(fstype)) throw new SchemaError(`fstype: '${fstype}' is not a filesystem type`);
  return fstype;
}

function parseGuestPath(value: string, where: string): string {
  if (!value.startsWith('/') || value.includes('\0') || value.split('/').includes('..')) {
    throw new SchemaError(`${where}: '${value}' must be an absolute path without '..'`);
  }
  return value;
}

/**
 * The fields of a SetupSpec that make the guest root; the rest (hostname, volumes, network...) configure a run in it.
 */
export const ROOT_SETUP_FIELDS = ['image', 'rootShare', 'upper', 'upperSizeMiB', 'workspace'] as const;

export type RootSetupSpec = Pick<SetupSpec, (typeof ROOT_SETUP_FIELDS)[number]>;

/** The root part of a spec, with its keys in one order: equal roots compare equal as JSON. */
export function rootSetupOf(spec: SetupSpec): RootSetupSpec {
  const root: RootSetupSpec = {};
  if (spec.image)
    root.image = spec.image.fstype
      ? { device: spec.image.device, fstype: spec.image.fstype }
      : { device: spec.image.device };
  if (spec.rootShare) root.rootShare = { tag: spec.rootShare.tag };
  if (spec.upper)
    root.upper = {
      device: spec.upper.device,
      fstype: spec.upper.fstype,
      ...(spec.upper.dir !== undefined ? { dir: spec.upper.dir } : {}),
    };
  if (spec.upperSizeMiB !== undefined) root.upperSizeMiB = spec.upperSizeMiB;
  if (spec.workspace) root.workspace = { device: spec.workspace.device, fstype: spec.workspace.fstype };
  return root;
}

/** `setupRoot` takes only the root fields: a run's own settings never reach a boot snapshot. */
export function parseSetupRoot(args: Json): RootSetupSpec {
  const spec = parseSetup(args, 'setupRoot');
  const extra = Object.keys(spec).filter((k) => !(ROOT_SETUP_FIELDS as readonly string[]).includes(k));
  if (extra.length > 0) throw new SchemaError(`setupRoot: ${extra.join(', ')} belong to setup, not setupRoot`);
  return rootSetupOf(spec);
}

function parseShareTag(tag: string, field: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(tag))
    throw new SchemaError(`${field}: tag '${tag}' has characters a mount option cannot carry`);
  return tag;
}

export function parseSetup(args: Json, op = 'setup'): SetupSpec {
  const f = new Fields(args, op);
  const spec: SetupSpec = {};
  const hostname = f.optStr('hostname', 64);
  if (hostname !== undefined) {
    if (!/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(hostname))
      throw new SchemaError(`setup.hostname: '${hostname}' is not a hostname`);
    spec.hostname = hostname;
  }
  const image = f.optObj('image');
  if (image)
    spec.image = {
      device: parseDevice(image.obj('device')),
      ...(image.has('fstype') ? { fstype: parseFstype(image.str('fstype', 32)) } : {}),
    };
  const upper = f.optObj('upper');
  if (upper) {
    spec.upper = parseDiskMount(upper);
    const dir = upper.optStr('dir', 256);
    if (dir !== undefined) spec.upper.dir = parseGuestPath(dir, 'setup.upper.dir');
  }
  const upperSize = f.optInt('upperSizeMiB', 1, 2 ** 24);
  if (upperSize !== undefined) spec.upperSizeMiB = upperSize;
  const workspace = f.optObj('workspace');
  if (workspace) spec.workspace = parseDiskMount(workspace);
  const rootShare = f.optObj('rootShare');
  if (rootShare) {
    const clash = (['image', 'upper', 'upperSizeMiB', 'workspace'] as const).filter((k) => spec[k] !== undefined);
    if (clash.length > 0)
      throw new SchemaError(`setup.rootShare: the root is the share, so ${clash.join(', ')} cannot be given`);
    spec.rootShare = { tag: parseShareTag(rootShare.str('tag', 64), 'setup.rootShare') };
  }
  const volumes = f.optArray('volumes', 256).map((v) => {
    const tag = parseShareTag(v.str('tag', 64), 'setup.volumes');
    return {
      tag,
      path: parseGuestPath(v.str('path', 1024), 'setup.volumes.path'),
      readOnly: v.optBool('readOnly') ?? false,
    };
  });
  if (volumes.length > 0) spec.volumes = volumes;
  const resolv = f.optStr('resolvConf', 16384);
  if (resolv !== undefined) spec.resolvConf = resolv;
  const network = f.optObj('network');
  if (network) {
    const ipv4 = (name: string) => {
      const v = network.str(name, 15);
      if (!isIPv4(v)) throw new SchemaError(`setup.network.${name}: '${v}' is not an IPv4 address`);
      return v;
    };
    spec.network = {
      ip: ipv4('ip'),
      prefix: network.int('prefix', 1, 30),
      gateway: ipv4('gateway'),
      mtu: network.int('mtu', 576, 65535),
    };
    const mac = network.optStr('mac', 17);
    if (mac !== undefined) {
      if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac))
        throw new SchemaError(`setup.network.mac: '${mac}' is not a MAC address`);
      spec.network.mac = mac.toLowerCase();
    }
  }
  const sshAgent = f.optObj('sshAgent');
  if (sshAgent) spec.sshAgent = { socket: parseGuestPath(sshAgent.str('socket', 100), 'setup.sshAgent.socket') };
  const execRoot = f.optStr('execRoot', 16);
  if (execRoot !== undefined) {
    if (execRoot !== 'fresh') throw new SchemaError(`setup.execRoot: '${execRoot}' is not 'fresh'`);
    if (spec.rootShare) throw new SchemaError('setup.execRoot: a shared root has no overlay to give each exec');
    spec.execRoot = 'fresh';
  }
  return spec;
}
