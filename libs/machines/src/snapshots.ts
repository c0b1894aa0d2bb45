// Snapshots and forks of machines (docs/architecture.md#snapshots-and-forks), for any front end.
// A snapshot of a running machine is taken by its supervisor (it owns the VM): the guest is
// paused while its state is saved and its disks are copied, then runs on. A stopped machine's
// snapshot is its disks alone. A fork is a new machine whose disks are qcow2 layers over the
// snapshot's; its first start resumes the snapshot's VM when there is one.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ConflictError, SmolvmError, UsageError } from '@smolvm/common';
import type { PortMapping } from '@smolvm/config';
import type { MachineRecord, NewMachine } from '@smolvm/machine-store';
import { copyDiskSparse, createCowDisk } from './disks';
import { machineFiles } from './layout';
import type { Machines, StartOptions, StartResult } from './machines';
import {
  SNAPSHOT_DISKS,
  SNAPSHOT_PACK,
  parseSnapshotId,
  validateTag,
  type SnapshotMeta,
  type SnapshotSummary,
} from './snapshot-store';
import { SNAPSHOT_SOCKET, type SnapshotReply } from './supervisor';

/** A running source's snapshot may take minutes under TCG (its RAM is streamed twice). */
const RUNNING_SNAPSHOT_TIMEOUT_MS = 20 * 60_000;
const LOCK_TIMEOUT_MS = 10 * 60_000;
/** Most forks one `fork -n` makes: each is a VM with the source's memory. */
export const MAX_FORKS = 64;

/** What a machine made from a snapshot may set; everything else is the source's. */
export interface FromSnapshotOptions {
  /** Its own network policy and port forwards (none of the source's host ports). */
  net?: boolean;
  allowHosts?: string[];
  allowCidrs?: string[];
  ports?: PortMapping[];
  /** A one-shot machine (a run of a packed running machine): removed with its disks when it stops. */
  ephemeral?: boolean;
}

export interface ForkOptions extends FromSnapshotOptions {
  /** How each fork is started (the source's pinned image). */
  start?: StartOptions;
}

export interface SnapshotCreateResult extends SnapshotSummary {
  /** How long a running source was paused (ms). */
  pausedMs?: number;
}

/** Why the snapshot of a machine cannot be taken in its state. */
function requireSnapshottable(record: MachineRecord): void {
  if (record.ephemeral) {
    throw new ConflictError(
      `machine "${record.name}" is ephemeral (machine run -d): it has no persistent disks to snapshot`,
      { remedy: 'snapshot a persistent machine (`smolvm machine create NAME`)' },
    );
  }
}

export async function createSnapshot(
  machines: Machines,
  name: string,
  opts: { tag?: string } = {},
): Promise<SnapshotCreateResult> {
  if (opts.tag !== undefined) validateTag(opts.tag);
  const store = machines.snapshots;
  return machines.store.withMachineLock(
    name,
    async () => {
      const status = await machines.status(name);
      const record = status.record;
      requireSnapshottable(record);
      if (status.state === 'unreachable') {
        throw new ConflictError(`machine "${name}" is running but its agent does not answer`, {
          remedy: `stop it with \`smolvm machine stop --name ${name}\`, then snapshot it`,
        });
      }
      const tag = opts.tag ?? store.nextTag(name);
      const id = `${name}:${tag}`;
      if (store.tags(name).includes(tag))
        throw new ConflictError(`snapshot "${id}" already exists`, {
          remedy: 'choose another --tag, or leave it out for the next free number',
        });
      const running = status.state === 'running';
      const staging = store.beginStaging(id.replace(':', '.'));
      try {
        const files = machines.files(name);
        let pausedMs: number | undefined;
        let nic = record.net || record.ports.length > 0;
        if (running && record.runtime) {
          const reply = await askSupervisor(path.join(path.dirname(record.runtime.socket), SNAPSHOT_SOCKET), staging);
          pausedMs = reply.pausedMs;
          nic = reply.nic;
        } else {
          const format = record.fromSnapshot ? 'qcow2' : 'raw';
          copyDiskSparse(files.overlayDisk, path.join(staging, SNAPSHOT_DISKS.overlay), format);
          copyDiskSparse(files.storageDisk, path.join(staging, SNAPSHOT_DISKS.storage), format);
        }
        if (fs.existsSync(files.pack)) fs.copyFileSync(files.pack, path.join(staging, SNAPSHOT_PACK));
        const { runtime: _runtime, ...source } = record;
        const meta = store.commit(staging, {
          id,
          machine: name,
          tag,
          createdAt: new Date().toISOString(),
          running,
          source: source as MachineRecord,
          nic,
          ...(pausedMs !== undefined ? { pausedMs } : {}),
        });
        return { ...summaryOf(machines, meta), ...(pausedMs !== undefined ? { pausedMs } : {}) };
      } catch (err) {
        fs.rmSync(staging, { recursive: true, force: true });
        throw err;
      }
    },
    { purpose: 'snapshot', timeoutMs: LOCK_TIMEOUT_MS },
  );
}

/** One JSON line each way with the supervisor of the running machine. */
function askSupervisor(socketPath: string, dir: string): Promise<Extract<SnapshotReply, { ok: true }>> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new SmolvmError(`the snapshot took longer than ${RUNNING_SNAPSHOT_TIMEOUT_MS / 60_000} minutes`, {
          remedy: 'see the machine log (`smolvm machine status`)',
        }),
      );
    }, RUNNING_SNAPSHOT_TIMEOUT_MS);
    socket.on('connect', () => socket.write(JSON.stringify({ dir }) + '\n'));
    socket.on('data', (d: Buffer) => (data += d.toString()));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(
        new SmolvmError(`cannot reach the machine's supervisor to snapshot it: ${err.message}`, {
          remedy:
            'a machine started by an older smolvm must be restarted once (`smolvm machine stop`, `smolvm machine start`)',
        }),
      );
    });
    socket.on('close', () => {
      clearTimeout(timer);
      let reply: SnapshotReply;
      try {
        reply = JSON.parse(data) as SnapshotReply;
      } catch {
        reject(
          new SmolvmError('the supervisor ended the snapshot without an answer', {
            remedy: 'see the machine log (`smolvm machine status`)',
          }),
        );
        return;
      }
      if (reply.ok) resolve(reply);
      else reject(new SmolvmError(`snapshot failed: ${reply.message}`, reply.remedy ? { remedy: reply.remedy } : {}));
    });
  });
}

function dependentsOf(machines: Machines, id: string): string[] {
  return machines.store
    .list()
    .machines.filter((r) => r.fromSnapshot === id)
    .map((r) => r.name)
    .sort();
}

function summaryOf(machines: Machines, meta: SnapshotMeta): SnapshotSummary {
  return {
    id: meta.id,
    machine: meta.machine,
    tag: meta.tag,
    createdAt: meta.createdAt,
    sizeBytes: machines.snapshots.sizeOf(meta.id),
    running: meta.running,
    dependents: dependentsOf(machines, meta.id),
  };
}

export async function listSnapshots(machines: Machines): Promise<SnapshotSummary[]> {
  return machines.snapshots.readAll().snapshots.map((m) => summaryOf(machines, m));
}

export async function getSnapshot(machines: Machines, id: string): Promise<SnapshotSummary> {
  return summaryOf(machines, machines.snapshots.readMeta(id));
}

export async function removeSnapshot(machines: Machines, id: string): Promise<void> {
  const { machine } = parseSnapshotId(id);
  await machines.store.withMachineLock(
    machine,
    () => {
      const store = machines.snapshots;
      if (!fs.existsSync(store.dir(id))) store.readMeta(id);
      const dependents = dependentsOf(machines, id);
      if (dependents.length > 0) {
        throw new ConflictError(
          `snapshot "${id}" is in use by ${dependents.length === 1 ? 'machine' : 'machines'} ${dependents.map((d) => `"${d}"`).join(', ')}`,
          {
            remedy: `delete ${dependents.length === 1 ? 'it' : 'them'} first (\`smolvm machine delete ${dependents[0]}\`): their disks are built on the snapshot`,
          },
        );
      }
      store.remove(id);
    },
    { purpose: 'snapshot rm', timeoutMs: LOCK_TIMEOUT_MS },
  );
}

/**
 * A new machine from the snapshot: the source's settings, its own network policy and ports
 * (`opts`), disks copy-on-write over the snapshot's. Not started.
 */
export async function createMachineFromSnapshot(
  machines: Machines,
  name: string,
  snapshotId: string,
  opts: FromSnapshotOptions = {},
): Promise<MachineRecord> {
  const { machine } = parseSnapshotId(snapshotId);
  // The source's lock: a concurrent `snapshot rm` either sees this machine or is done first.
  return machines.store.withMachineLock(
    machine,
    async () => {
      const meta = machines.snapshots.verify(snapshotId);
      const wantsNic =
        opts.net === true ||
        (opts.allowHosts?.length ?? 0) > 0 ||
        (opts.allowCidrs?.length ?? 0) > 0 ||
        (opts.ports?.length ?? 0) > 0;
      if (meta.running && wantsNic && !meta.nic) {
        throw new UsageError(
          `snapshot "${snapshotId}" is of a running machine without a network device, so its copies have none either`,
          {
            remedy:
              'leave out --net, --allow-* and -p, or snapshot a machine that has a network (created with --net or -p) or a stopped one',
          },
        );
      }
      const src = meta.source;
      const input: NewMachine = {
        name,
        cpus: src.cpus,
        memoryMiB: src.memoryMiB,
        storageGiB: src.storageGiB,
        overlayGiB: src.overlayGiB,
        volumes: src.volumes,
        env: src.env,
        init: src.init,
        sshAgent: src.sshAgent,
        net: opts.net ?? false,
        allowHosts: opts.allowHosts ?? [],
        allowCidrs: opts.allowCidrs ?? [],
        ports: opts.ports ?? [],
        fromSnapshot: snapshotId,
        ...(opts.ephemeral ? { ephemeral: true } : {}),
        ...(src.image !== undefined ? { image: src.image } : {}),
        ...(src.imageDigest !== undefined ? { imageDigest: src.imageDigest } : {}),
        ...(src.from !== undefined ? { from: src.from } : {}),
        ...(src.workdir !== undefined ? { workdir: src.workdir } : {}),
        ...(src.user !== undefined ? { user: src.user } : {}),
        ...(src.smolfile !== undefined ? { smolfile: src.smolfile } : {}),
        ...(src.health !== undefined ? { health: src.health } : {}),
      };
      const dir = machines.snapshots.dir(snapshotId);
      return machines.store.create(input, {
        populate: (tmp) => {
          const files = machineFiles(tmp);
          createCowDisk(path.join(dir, SNAPSHOT_DISKS.overlay), files.overlayDisk);
          createCowDisk(path.join(dir, SNAPSHOT_DISKS.storage), files.storageDisk);
          const pack = path.join(dir, SNAPSHOT_PACK);
          if (fs.existsSync(pack)) {
            fs.copyFileSync(pack, files.pack);
            fs.chmodSync(files.pack, 0o600);
          }
        },
      });
    },
    { purpose: 'create from snapshot', timeoutMs: LOCK_TIMEOUT_MS },
  );
}

/** The names `fork NAME NEW -n COUNT` makes: NEW-1 .. NEW-COUNT. */
export function forkNames(base: string, count?: number): string[] {
  if (count === undefined) return [base];
  if (!Number.isInteger(count) || count < 1 || count > MAX_FORKS)
    throw new UsageError(`-n must be a whole number from 1 to ${MAX_FORKS}, got ${count}`, {
      remedy: `give -n 1 to ${MAX_FORKS}`,
    });
  return Array.from({ length: count }, (_, i) => `${base}-${i + 1}`);
}

/** A snapshot id (`MACHINE:TAG`) rather than a machine name: machine names have no colon. */
export function isSnapshotId(source: string): boolean {
  return source.includes(':');
}

/**
 * Snapshots `source` (running or not), then creates and starts one machine per name from it.
 * A `source` that is a snapshot id (`MACHINE:TAG`) is used as it is: copies of that saved state,
 * no new snapshot (the one-step `create --from-snapshot` + `start`). Ports can only be given to
 * a single fork (host ports are one machine's each). A fork that fails to start is deleted
 * again; those already running stay. Returns the names started.
 */
export async function forkMachine(
  machines: Machines,
  source: string,
  names: string[] | { count: number; base: string },
  opts: ForkOptions = {},
): Promise<{ snapshot: SnapshotSummary | SnapshotCreateResult; machines: string[]; results: StartResult[] }> {
  const list = Array.isArray(names) ? names : forkNames(names.base, names.count);
  if (list.length === 0)
    throw new UsageError('fork needs at least one new machine name', { remedy: 'give NEW, or -n COUNT' });
  if (list.length > 1 && (opts.ports?.length ?? 0) > 0) {
    throw new UsageError('-p cannot be given to several forks: a host port belongs to one machine', {
      remedy: 'make the forks one at a time with `smolvm machine create NEW --from-snapshot ID -p HOST:GUEST`',
    });
  }
  for (const n of list) {
    if (machines.store.exists(n))
      throw new ConflictError(`machine "${n}" already exists`, {
        remedy: `choose another name, or delete it first with \`smolvm machine delete ${n}\``,
      });
  }
  const snapshot = isSnapshotId(source) ? await getSnapshot(machines, source) : await createSnapshot(machines, source);
  const started: string[] = [];
  const results: StartResult[] = [];
  for (const n of list) {
    await createMachineFromSnapshot(machines, n, snapshot.id, opts);
    try {
      results.push(await machines.start(n, opts.start ?? {}));
    } catch (err) {
      await machines.delete(n, { force: true }).catch(() => undefined);
      throw err;
    }
    started.push(n);
  }
  const dependents = [...new Set([...snapshot.dependents, ...started])].sort();
  return { snapshot: { ...snapshot, dependents }, machines: started, results };
}
