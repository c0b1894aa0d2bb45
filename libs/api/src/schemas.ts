// The API's JSON shapes, as TypeBox schemas: the server validates requests and serializes
// responses with them, and the OpenAPI document is generated from them (one source of truth).
// Objects refuse unknown fields; every string and array a client sends has a bound.
import { Type, type Static, type TSchema } from '@sinclair/typebox';

const strict = { additionalProperties: false } as const;

/** Machine names as `machine create` takes them; the store checks the full rules. */
export const MachineName = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$',
  description: 'Machine name',
});

export const NameParams = Type.Object({ name: MachineName }, strict);
export const FileParams = Type.Object(
  {
    name: MachineName,
    '*': Type.String({ maxLength: 4096, description: 'Absolute guest path without its leading /' }),
  },
  strict,
);

export const ErrorBody = Type.Object(
  {
    error: Type.String({ description: 'What failed, why, and what to do' }),
    code: Type.String({ description: 'Stable machine-readable code, e.g. not-found, conflict, invalid-request' }),
  },
  strict,
);
export type ErrorBody = Static<typeof ErrorBody>;

export const MachineState = Type.Union([
  Type.Literal('created'),
  Type.Literal('stopped'),
  Type.Literal('running'),
  Type.Literal('unreachable'),
]);

/** `machine ls --json`. */
const summaryFields = {
  name: Type.String(),
  state: MachineState,
  image: Type.Union([Type.String(), Type.Null()]),
  cpus: Type.Integer(),
  memoryMiB: Type.Integer(),
  storageGiB: Type.Integer(),
  overlayGiB: Type.Integer(),
  net: Type.Boolean(),
  ephemeral: Type.Boolean(),
  createdAt: Type.String(),
};
export const MachineSummary = Type.Object(summaryFields, strict);

/** `machine status --json`. */
export const Machine = Type.Object(
  {
    ...summaryFields,
    pingMs: Type.Optional(Type.Number()),
    supervisorPid: Type.Optional(Type.Integer()),
    startedAt: Type.Optional(Type.String()),
    lastExit: Type.Optional(Type.Object({ at: Type.String(), cause: Type.String(), detail: Type.String() }, strict)),
    diskUsage: Type.Object({ overlayBytes: Type.Integer(), storageBytes: Type.Integer() }, strict),
  },
  strict,
);

export const MachineList = Type.Object({ machines: Type.Array(MachineSummary) }, strict);

const EnvMap = Type.Record(
  Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', maxLength: 256 }),
  Type.String({ maxLength: 32768 }),
  {
    maxProperties: 256,
    description: "Environment variables (later wins over the machine's own)",
  },
);
const Strings = (max: number, item = 4096) => Type.Array(Type.String({ maxLength: item }), { maxItems: max });

/** The workload of a machine, as `machine create` / `run -d` flags. */
const workloadFields = {
  image: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 1024,
      description: 'OCI image (default: the built-in bare image); pinned by digest',
    }),
  ),
  cpus: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
  memory: Type.Optional(
    Type.Union([Type.Integer({ minimum: 1 }), Type.String({ maxLength: 32 })], {
      description: 'MiB, or a size like "2G"',
    }),
  ),
  storage: Type.Optional(
    Type.Union([Type.Integer({ minimum: 1 }), Type.String({ maxLength: 32 })], { description: 'GiB, or "40G"' }),
  ),
  overlay: Type.Optional(
    Type.Union([Type.Integer({ minimum: 1 }), Type.String({ maxLength: 32 })], { description: 'GiB, or "4G"' }),
  ),
  env: Type.Optional(Strings(256, 32768)),
  workdir: Type.Optional(Type.String({ maxLength: 4096 })),
  init: Type.Optional(Strings(64, 16384)),
  net: Type.Optional(Type.Boolean()),
  allowHosts: Type.Optional(Strings(256, 253)),
  allowCidrs: Type.Optional(Strings(256, 64)),
  outboundLocalhostOnly: Type.Optional(Type.Boolean()),
  ports: Type.Optional(Strings(64, 32)),
};
const noHostAccess =
  'Volumes and the SSH agent are not offered over the API (they hand host files and keys to the machine): use the CLI for them.';

/** `<machine>:<tag>`. In a URL path the `:` goes as it is (RFC 3986 allows it in a segment) or as `%3A`. */
const SNAPSHOT_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}:[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
export const SnapshotTag = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$',
  description: 'Snapshot tag (default: a generated one)',
});
export const SnapshotId = Type.String({
  minLength: 3,
  maxLength: 129,
  pattern: SNAPSHOT_ID_PATTERN,
  description: 'Snapshot id: MACHINE:TAG',
});

/** Fields a machine made from a snapshot takes from the snapshot instead (its image, shape, disks and settings). */
export const SNAPSHOT_FIXED_FIELDS = [
  'image',
  'cpus',
  'memory',
  'storage',
  'overlay',
  'init',
  'workdir',
  'env',
] as const;

export const CreateMachineBody = Type.Object(
  {
    name: MachineName,
    ...workloadFields,
    fromSnapshot: Type.Optional({
      ...SnapshotId,
      description: `A snapshot (MACHINE:TAG) to start from: its disks, memory and running processes. Not with ${SNAPSHOT_FIXED_FIELDS.join(', ')} (the snapshot fixes them); network policy and ports are the new machine's own`,
    }),
  },
  {
    ...strict,
    description: `As \`machine create\` flags (\`fromSnapshot\`: \`machine create --from-snapshot\`). ${noHostAccess}`,
  },
);
export const RunBody = Type.Object(
  { name: Type.Optional(MachineName), ...workloadFields },
  {
    ...strict,
    description: `As \`machine run -d\` flags: an ephemeral machine (named run-XXXXXXXX unless given), removed with its disks when it stops. ${noHostAccess}`,
  },
);
export type RunBody = Static<typeof RunBody>;
export type CreateMachineBody = Static<typeof CreateMachineBody>;

export const Snapshot = Type.Object(
  {
    id: SnapshotId,
    machine: Type.String({ description: 'The machine it was taken of' }),
    tag: Type.String(),
    createdAt: Type.String({ description: 'RFC 3339' }),
    sizeBytes: Type.Integer({ minimum: 0, description: 'Bytes it occupies on disk' }),
    running: Type.Boolean({
      description: 'The machine was running when it was taken (its processes run on in machines made from it)',
    }),
    dependents: Type.Array(Type.String(), {
      description: 'Machines made from it: it cannot be deleted while there are any',
    }),
  },
  strict,
);
export const SnapshotList = Type.Object({ snapshots: Type.Array(Snapshot) }, strict);
export const SnapshotParams = Type.Object(
  { id: { ...SnapshotId, description: 'Snapshot id MACHINE:TAG; the colon as it is or percent-encoded (%3A)' } },
  strict,
);
export const CreateSnapshotBody = Type.Object(
  { tag: Type.Optional(SnapshotTag) },
  { ...strict, description: 'A running machine is paused only while its memory and disks are copied' },
);

/** A new machine's own network policy and host ports: all a machine made from a snapshot chooses. */
const networkFields = {
  net: workloadFields.net,
  allowHosts: workloadFields.allowHosts,
  allowCidrs: workloadFields.allowCidrs,
  outboundLocalhostOnly: workloadFields.outboundLocalhostOnly,
  ports: workloadFields.ports,
};
export const ForkBody = Type.Object(
  {
    names: Type.Optional(
      Type.Array(MachineName, {
        minItems: 1,
        maxItems: 64,
        uniqueItems: true,
        description: 'Names of the new machines',
      }),
    ),
    name: Type.Optional({
      ...MachineName,
      description: 'Name of the new machine; with count, the copies are NAME-1..NAME-COUNT',
    }),
    count: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 64,
        description: 'How many copies (machine fork -n), named NAME-1..NAME-COUNT',
      }),
    ),
    ...networkFields,
  },
  {
    ...strict,
    description:
      "As `machine fork SOURCE NEW [-n COUNT]`: snapshots the machine, then creates and starts one machine per name from it. Give names, or name (with count). Each copy is its own machine: new identity, its own network policy; ports only for a single copy (a host port is one machine's)",
  },
);
export const ForkResult = Type.Object(
  { snapshot: Snapshot, machines: Type.Array(Machine, { description: 'The copies, running' }) },
  strict,
);
export type ForkBody = Static<typeof ForkBody>;

export const DeleteQuery = Type.Object(
  { force: Type.Optional(Type.Boolean({ description: 'Kill a running machine first' })) },
  strict,
);

export const StartResult = Type.Object(
  { machine: Machine, alreadyRunning: Type.Boolean(), bootMs: Type.Optional(Type.Number()) },
  strict,
);

export const StopBody = Type.Object(
  {
    timeoutSeconds: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 3600, description: 'Killed after this (default 30)' }),
    ),
  },
  strict,
);
export const StopResult = Type.Object(
  {
    name: Type.String(),
    wasRunning: Type.Boolean(),
    removed: Type.Boolean({ description: 'An ephemeral machine is removed when it stops' }),
  },
  strict,
);

export const ExecBody = Type.Object(
  {
    command: Type.Array(Type.String({ maxLength: 131072 }), { minItems: 1, maxItems: 4096 }),
    env: Type.Optional(EnvMap),
    workdir: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    timeoutSeconds: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 86400,
        description: 'The process is killed after this; default 300 for exec, none for exec/stream',
      }),
    ),
  },
  strict,
);
export type ExecBody = Static<typeof ExecBody>;

export const ExecResult = Type.Object(
  {
    exitCode: Type.Integer({
      description: '128+n when signal n ended it; 127/126 when the command was not found / not executable',
    }),
    signal: Type.Union([Type.String(), Type.Null()]),
    stdout: Type.String(),
    stderr: Type.String(),
    timedOut: Type.Boolean(),
    truncated: Type.Boolean({ description: 'Output past the per-stream cap was dropped' }),
  },
  strict,
);
export type ExecResult = Static<typeof ExecResult>;

export const FileResult = Type.Object({ path: Type.String(), bytes: Type.Integer() }, strict);

export const LogsQuery = Type.Object(
  {
    follow: Type.Optional(Type.Boolean({ description: 'Keep the stream open for new lines' })),
    tail: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 100000, description: 'Start with the last N lines (default 200)' }),
    ),
  },
  strict,
);

export const PullBody = Type.Object(
  {},
  { ...strict, description: "Pulls the machine's pinned image (by digest) into the local store" },
);
export const PullResult = Type.Object(
  { image: Type.Union([Type.String(), Type.Null()]), digest: Type.Union([Type.String(), Type.Null()]) },
  strict,
);

export const SseText = Type.String({ description: 'Server-sent events (text/event-stream)' });

/** Every error status a route can answer with, all with the same body. */
export function errors(...statuses: number[]): Record<number, TSchema> {
  return Object.fromEntries(statuses.map((s) => [s, ErrorBody]));
}
