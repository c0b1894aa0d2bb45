// `machine snapshot create|ls|rm`, `machine fork` and `machine create --from-snapshot`: thin
// adapters over @smolvm/machines.
import { UsageError, smolvmDirs } from '@smolvm/common';
import { parseAllowHost, parseCidr, parsePort, type PortMapping } from '@smolvm/config';
import { validateMachineName, type MachineRecord } from '@smolvm/machine-store';
import {
  importPackedSnapshot,
  isSnapshotId,
  type FromSnapshotOptions,
  type Machines,
  type SnapshotSummary,
} from '@smolvm/machines';
import type { PackFile } from '@smolvm/pack/local';
import { formatBytes } from '../../output/progress';
import { renderTable, writeJson } from '../../output/table';
import type { CreateArgs } from './create';
import type { ForkArgs } from './fork';
import { cliMachines, machineImageErofs } from './machines';
import type { SnapshotCreateArgs, SnapshotLsArgs, SnapshotRmArgs } from './snapshot';

export async function runSnapshotCreate(args: SnapshotCreateArgs): Promise<void> {
  validateMachineName(args.name);
  const snapshot = await cliMachines().createSnapshot(args.name, args.tag !== undefined ? { tag: args.tag } : {});
  if (args.json) return writeJson(snapshot);
  process.stdout.write(`${snapshot.id}\n`);
  if (!args.quiet) {
    const paused =
      snapshot.pausedMs !== undefined ? `; the machine was paused ${(snapshot.pausedMs / 1000).toFixed(1)} s` : '';
    process.stderr.write(
      `snapshot ${snapshot.id} of ${snapshot.running ? 'running' : 'stopped'} machine "${snapshot.machine}" (${formatBytes(snapshot.sizeBytes)} on disk${paused})\n`,
    );
  }
}

export async function runSnapshotLs(args: SnapshotLsArgs): Promise<void> {
  const machines = cliMachines();
  const snapshots = await machines.listSnapshots();
  const { damaged } = machines.snapshots.readAll();
  if (args.json) writeJson(snapshots);
  else if (snapshots.length === 0 && damaged.length === 0)
    process.stderr.write('no snapshots yet; take one with `smolvm machine snapshot create NAME`\n');
  else if (snapshots.length > 0)
    process.stdout.write(renderTable(['ID', 'SOURCE', 'STATE', 'SIZE', 'CREATED', 'USED BY'], snapshots.map(row)));
  for (const d of damaged) process.stderr.write(`warning: ${d.reason}\n`);
}

function row(s: SnapshotSummary): string[] {
  return [
    s.id,
    s.machine,
    s.running ? 'running' : 'stopped',
    formatBytes(s.sizeBytes),
    s.createdAt,
    s.dependents.join(',') || '-',
  ];
}

export async function runSnapshotRm(args: SnapshotRmArgs): Promise<void> {
  await cliMachines().removeSnapshot(args.id);
  if (!args.quiet) process.stderr.write(`removed snapshot ${args.id}\n`);
}

function ports(values: string[] | undefined): PortMapping[] {
  return (values ?? []).map((v) => parsePort(v));
}

function networkOptions(args: {
  net?: boolean;
  allowHost?: string[];
  allowCidr?: string[];
  port?: string[];
}): FromSnapshotOptions {
  return {
    ...(args.net !== undefined ? { net: args.net } : {}),
    ...(args.allowHost ? { allowHosts: args.allowHost.map(parseAllowHost) } : {}),
    ...(args.allowCidr ? { allowCidrs: args.allowCidr.map((c) => parseCidr(c).cidr) } : {}),
    ports: ports(args.port),
  };
}

/** `machine create NEW --from-snapshot ID`: only the network flags apply; the rest is the source's. */
export async function createFromSnapshot(
  machines: Machines,
  args: CreateArgs & { fromSnapshot: string },
): Promise<MachineRecord> {
  refuseSettings(args, '--from-snapshot');
  return machines.createMachineFromSnapshot(args.name, args.fromSnapshot, networkOptions(args));
}

/**
 * `machine create NEW --from PACK` of a packed running machine: the pack is imported as a snapshot
 * (once per pack digest), and the machine made from it as --from-snapshot does.
 */
export async function createFromPackedSnapshot(
  machines: Machines,
  args: CreateArgs,
  pack: PackFile,
): Promise<MachineRecord> {
  refuseSettings({ ...args, from: undefined }, '--from of a packed running machine');
  if (!args.quiet && process.stderr.isTTY)
    process.stderr.write(`importing the running machine packed in ${pack.path}...\n`);
  const id = await importPackedSnapshot(machines, pack, smolvmDirs().cache);
  return machines.createMachineFromSnapshot(args.name, id, networkOptions(args));
}

/** Only the network flags apply to a copy of a running machine; the rest is the source's. */
function refuseSettings(args: CreateArgs, flag: string): void {
  const other = (
    [
      'image',
      'smolfile',
      'from',
      'cpus',
      'memory',
      'storage',
      'overlay',
      'workdir',
      'env',
      'volume',
      'init',
      'sshAgent',
    ] as const
  ).filter((k) => args[k] !== undefined);
  if (other.length > 0) {
    throw new UsageError(
      `${flag} copies the machine's settings; --${other.map(kebab).join(', --')} cannot change them`,
      { remedy: `give only --net, --allow-host, --allow-cidr and -p with ${flag}` },
    );
  }
}

function kebab(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

export async function runFork(args: ForkArgs): Promise<void> {
  const machines = cliMachines();
  // From a snapshot id: copies of that saved state, started in this one process.
  const fromSnapshot = isSnapshotId(args.name);
  if (!fromSnapshot) validateMachineName(args.name);
  const source = fromSnapshot ? machines.snapshots.readMeta(args.name).source : machines.store.get(args.name);
  const imageErofs = await machineImageErofs(source, args.quiet);
  const result = await machines.forkMachine(
    args.name,
    args.count !== undefined ? { base: args.new, count: args.count } : [args.new],
    {
      ...networkOptions(args),
      start: imageErofs ? { imageErofs } : {},
    },
  );
  if (args.json) return writeJson({ snapshot: result.snapshot, machines: result.machines });
  process.stdout.write(result.machines.map((m) => `${m}\n`).join(''));
  if (!args.quiet)
    process.stderr.write(
      `started ${result.machines.length} ${result.machines.length === 1 ? 'copy' : 'copies'} of "${result.snapshot.machine}" from snapshot ${result.snapshot.id}\n`,
    );
}
