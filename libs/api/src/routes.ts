// The routes of /api/v1: thin adapters over @smolvm/machines, the same calls the CLI makes.
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ConflictError, SmolvmError } from '@smolvm/common';
import { ProtocolError, SessionLostError, type AgentClient, type ExecSession } from '@smolvm/agent-protocol';
import { mergeRunOptions, type ImageReference, type MergedRunOptions } from '@smolvm/config';
import { validateMachineName, type MachineRecord } from '@smolvm/machine-store';
import {
  byteCounter,
  forkNames,
  machineDetails,
  machineExecOptions,
  machineInput,
  machineNetwork,
  machineSummary,
  openGuestPath,
  pinnedImage,
  shellExitOf,
  uploadFile,
  uploadTar,
  type FromSnapshotOptions,
  type Machines,
  type SnapshotSummary,
} from '@smolvm/machines';
import type { BuiltBaseOptions, PreparedImage, PullEvent } from '@smolvm/oci';
import { exitCodeFor } from '@smolvm/runtime';
import { HttpError, toHttpError } from './errors';
import {
  CreateMachineBody,
  CreateSnapshotBody,
  DeleteQuery,
  ErrorBody,
  ExecBody,
  ExecResult,
  FileParams,
  FileResult,
  ForkBody,
  ForkResult,
  LogsQuery,
  Machine,
  MachineList,
  NameParams,
  PullBody,
  PullResult,
  RunBody,
  SNAPSHOT_FIXED_FIELDS,
  Snapshot,
  SnapshotList,
  SnapshotParams,
  SseText,
  StartResult,
  StopBody,
  StopResult,
  errors,
  type ExecBody as ExecBodyT,
  type ExecResult as ExecResultT,
  type RunBody as RunBodyT,
} from './schemas';
import { SseStream } from './sse';

export interface ApiContext {
  machines: Machines;
  /** Pulls (if missing) and prepares an image. */
  pull: (reference: string | ImageReference, onProgress?: (event: PullEvent) => void) => Promise<PreparedImage>;
  /** Aborted when the server shuts down: open streams end with a `shutdown` event. */
  shutdown: AbortSignal;
  /** The image a bare machine (no image) is based on: config.toml's base, else the built Debian base. */
  base: () => Promise<PreparedImage>;
  /** Where the built base is besides the host's set-up, to import it again into a store that lost it. */
  builtBase?: BuiltBaseOptions;
}

/** The image a machine boots from: none to resolve for one made from a pack (it boots the pack's). */
function machineBootImage(
  ctx: ApiContext,
  record: MachineRecord,
  pull: ApiContext['pull'] = ctx.pull,
): Promise<PreparedImage | undefined> {
  if (record.from) return Promise.resolve(undefined);
  return pinnedImage(record, (ref) => pull(ref), ctx.builtBase ? { builtBase: ctx.builtBase } : {});
}

export type Api = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Per stream of a buffered exec: more is dropped (`truncated`), the process is not stopped. */
export const EXEC_OUTPUT_CAP = 16 * 1024 * 1024;
const DEFAULT_EXEC_TIMEOUT_S = 300;
const LOG_TAIL_DEFAULT = 200;
const LOG_READ_MAX = 1024 * 1024;
const LOG_POLL_MS = 300;

const octets = { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } as const;
const tarball = { 'application/x-tar': { schema: { type: 'string', format: 'binary' } } } as const;
const sse = { content: { 'text/event-stream': { schema: SseText } } };

/** A client went away (or the server is stopping) before the response finished. */
function onAbandon(reply: FastifyReply, shutdown: AbortSignal, fn: (why: 'client' | 'shutdown') => void): () => void {
  const onClose = () => {
    if (!reply.raw.writableFinished) fn('client');
  };
  const onShutdown = () => fn('shutdown');
  reply.raw.on('close', onClose);
  shutdown.addEventListener('abort', onShutdown, { once: true });
  return () => {
    reply.raw.off('close', onClose);
    shutdown.removeEventListener('abort', onShutdown);
  };
}

function lostMachine(name: string, err: unknown): unknown {
  if (err instanceof ProtocolError || err instanceof SessionLostError) {
    return new SmolvmError(`machine "${name}" went away while the command ran`, {
      remedy: `see GET /api/v1/machines/${name}`,
    });
  }
  return err;
}

function guestPathOf(wildcard: string): string {
  const p = '/' + wildcard.replace(/^\/+/, '');
  if (p === '/' || p.split('/').some((part) => part === '..'))
    throw new HttpError(
      400,
      'invalid-path',
      `${p} is not a path to copy: name a file or directory below /, without ..`,
    );
  return p;
}

/** The body's workload merged as `machine create` merges its flags (there is no Smolfile here). */
function mergedWorkload(body: RunBodyT): MergedRunOptions {
  return mergeRunOptions({
    image: body.image,
    env: body.env,
    init: body.init,
    cpus: body.cpus,
    memory: body.memory,
    storage: body.storage,
    overlay: body.overlay,
    workdir: body.workdir,
    net: body.net,
    allowHosts: body.allowHosts,
    allowCidrs: body.allowCidrs,
    outboundLocalhostOnly: body.outboundLocalhostOnly,
    ports: body.ports,
    // `env: ["NAME"]` must not copy a variable of the server's own environment.
    hostEnv: {},
  });
}

/**
 * What a machine made from a snapshot chooses for itself: its network policy and host ports (merged as `machine create`
 * merges them).
 */
function snapshotMachineOptions(
  body: Pick<RunBodyT, 'net' | 'allowHosts' | 'allowCidrs' | 'outboundLocalhostOnly' | 'ports'>,
): FromSnapshotOptions {
  return machineNetwork(
    mergeRunOptions({
      net: body.net,
      allowHosts: body.allowHosts,
      allowCidrs: body.allowCidrs,
      outboundLocalhostOnly: body.outboundLocalhostOnly,
      ports: body.ports,
      hostEnv: {},
    }),
  );
}

/** The summary alone (the library's result may carry more, e.g. how long the source was paused). */
function snapshotSummary(s: SnapshotSummary): SnapshotSummary {
  return {
    id: s.id,
    machine: s.machine,
    tag: s.tag,
    createdAt: s.createdAt,
    sizeBytes: s.sizeBytes,
    running: s.running,
    dependents: s.dependents,
  };
}

/**
 * The request body as a stream of our own: the transfer may destroy it (a refused upload) without
 * tearing down the client's connection, and a client that goes away mid-upload fails it, so the
 * machine keeps the file it had.
 */
function ownedBody(raw: Readable): { stream: PassThrough; abandon(): boolean } {
  const stream = new PassThrough();
  stream.on('error', () => undefined);
  const gone = () => {
    if (!(raw as Readable & { complete?: boolean }).complete)
      stream.destroy(new Error('the client went away during the upload'));
  };
  raw.on('error', gone);
  raw.on('aborted', gone);
  raw.on('close', gone);
  raw.pipe(stream);
  return {
    stream,
    abandon() {
      raw.unpipe(stream);
      const unread = !raw.readableEnded;
      // What the client still sends is read and dropped until the connection closes.
      raw.resume();
      return unread;
    },
  };
}

/** Starts the command, or says how a shell would end it (127/126). */
async function startExec(
  ctx: ApiContext,
  name: string,
  body: ExecBodyT,
): Promise<{ client: AgentClient; session: ExecSession } | { shell: { exitCode: number; message: string } }> {
  const record = ctx.machines.store.get(name);
  const options = machineExecOptions(record, body.command, {
    env: Object.entries(body.env ?? {}).map(([k, v]) => ({ name: k, value: v })),
    ...(body.workdir !== undefined ? { workdir: body.workdir } : {}),
  });
  const client = await ctx.machines.connect(name);
  try {
    return { client, session: await client.exec(options) };
  } catch (err) {
    client.close();
    const shell = shellExitOf(err);
    if (shell) return { shell };
    throw err;
  }
}

/** Collects a stream up to the cap, draining (and dropping) the rest so the process is never blocked. */
function collect(stream: Readable, onTruncate: () => void): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  return new Promise((resolve) => {
    stream.on('data', (d: Buffer) => {
      if (size + d.length > EXEC_OUTPUT_CAP) {
        onTruncate();
        const room = EXEC_OUTPUT_CAP - size;
        if (room > 0) chunks.push(d.subarray(0, room));
        size = EXEC_OUTPUT_CAP;
        return;
      }
      chunks.push(d);
      size += d.length;
    });
    const done = () => resolve(Buffer.concat(chunks).toString('utf8'));
    stream.once('end', done);
    stream.once('close', done);
    stream.once('error', done);
  });
}

function lastLines(file: string, n: number): { lines: string[]; offset: number; ino: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch {
    return { lines: [], offset: 0, ino: 0 };
  }
  try {
    const st = fs.fstatSync(fd);
    const start = Math.max(0, st.size - LOG_READ_MAX);
    const buf = Buffer.alloc(st.size - start);
    fs.readSync(fd, buf, 0, buf.length, start);
    let text = buf.toString('utf8');
    // A cut first line is dropped; so is an unfinished last one (it comes with the next read).
    if (start > 0) text = text.slice(text.indexOf('\n') + 1);
    const end = text.lastIndexOf('\n');
    const complete = end < 0 ? '' : text.slice(0, end);
    const unfinished = Buffer.byteLength(text.slice(end + 1));
    const lines = complete === '' ? [] : complete.split('\n');
    return { lines: n === 0 ? [] : lines.slice(-n), offset: st.size - unfinished, ino: st.ino };
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads what was appended since `offset` (at most LOG_READ_MAX); a rotated or truncated log restarts at 0. */
function readMore(file: string, pos: { offset: number; ino: number }): string[] {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch {
    return [];
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.ino !== pos.ino || st.size < pos.offset) {
      pos.ino = st.ino;
      pos.offset = 0;
    }
    const length = Math.min(st.size - pos.offset, LOG_READ_MAX);
    if (length <= 0) return [];
    const buf = Buffer.alloc(length);
    fs.readSync(fd, buf, 0, length, pos.offset);
    let end = buf.lastIndexOf(0x0a);
    // A line longer than a whole read is passed on in pieces rather than held forever.
    if (end < 0) end = length === LOG_READ_MAX ? length - 1 : -1;
    if (end < 0) return [];
    pos.offset += end + 1;
    return buf
      .subarray(0, end + (buf[end] === 0x0a ? 0 : 1))
      .toString('utf8')
      .split('\n');
  } finally {
    fs.closeSync(fd);
  }
}

export function registerRoutes(app: Api, ctx: ApiContext): void {
  const tags = ['machines'];

  app.get(
    '/api/v1/machines',
    { schema: { tags, summary: 'List machines', response: { 200: MachineList, ...errors(401, 500) } } },
    async () => {
      const { machines } = await ctx.machines.list();
      return { machines: machines.map((m) => machineSummary(m.record, m.state)) };
    },
  );

  app.post(
    '/api/v1/machines',
    {
      schema: {
        tags,
        summary:
          'Create a machine (pulls its image if missing, pins it by digest), or one from a snapshot (fromSnapshot; 404 when there is no such snapshot)',
        body: CreateMachineBody,
        response: { 201: Machine, ...errors(400, 401, 404, 409, 413, 415, 422, 500) },
      },
    },
    async (request, reply) => {
      const body = request.body;
      validateMachineName(body.name);
      if (ctx.machines.store.exists(body.name)) {
        throw new ConflictError(`machine "${body.name}" already exists`, {
          remedy: `choose another name, or delete it first (DELETE /api/v1/machines/${body.name})`,
        });
      }
      if (body.fromSnapshot !== undefined) {
        const fixed = SNAPSHOT_FIXED_FIELDS.filter((f) => body[f] !== undefined);
        if (fixed.length > 0)
          throw new HttpError(
            400,
            'invalid-request',
            `fromSnapshot cannot be combined with ${fixed.join(', ')}: a machine made from a snapshot has the snapshot's image, resources and disks; leave them out`,
          );
        await ctx.machines.createMachineFromSnapshot(body.name, body.fromSnapshot, snapshotMachineOptions(body));
        reply.code(201);
        return machineDetails(await ctx.machines.status(body.name));
      }
      const merged = mergedWorkload(body);
      const { input } = await machineInput(merged, { pull: (ref) => ctx.pull(ref), base: ctx.base });
      await ctx.machines.create({ name: body.name, ...input });
      reply.code(201);
      return machineDetails(await ctx.machines.status(body.name));
    },
  );

  const snapshotTags = ['snapshots'];
  app.post(
    '/api/v1/machines/:name/snapshots',
    {
      schema: {
        tags: snapshotTags,
        summary:
          'Snapshot a machine (running: paused only for the copy; stopped: its disks): memory, device state and disks, copy-on-write',
        params: NameParams,
        body: CreateSnapshotBody,
        response: { 201: Snapshot, ...errors(400, 401, 404, 409, 413, 415, 500) },
      },
    },
    async (request, reply) => {
      const snapshot = await ctx.machines.createSnapshot(
        request.params.name,
        request.body?.tag !== undefined ? { tag: request.body.tag } : {},
      );
      reply.code(201);
      return snapshotSummary(snapshot);
    },
  );

  app.get(
    '/api/v1/snapshots',
    {
      schema: {
        tags: snapshotTags,
        summary: 'List snapshots with their source, size and the machines made from them',
        response: { 200: SnapshotList, ...errors(401, 500) },
      },
    },
    async () => ({
      snapshots: await ctx.machines.listSnapshots(),
    }),
  );

  app.get(
    '/api/v1/snapshots/:id',
    {
      schema: {
        tags: snapshotTags,
        summary: 'One snapshot (id MACHINE:TAG; the colon as it is or as %3A)',
        params: SnapshotParams,
        response: { 200: Snapshot, ...errors(400, 401, 404, 500) },
      },
    },
    async (request) => ctx.machines.getSnapshot(request.params.id),
  );

  app.delete(
    '/api/v1/snapshots/:id',
    {
      schema: {
        tags: snapshotTags,
        summary: 'Delete a snapshot; refused (409) while machines are made from it',
        params: SnapshotParams,
        response: { 204: { type: 'null', description: 'Deleted' }, ...errors(400, 401, 404, 409, 500) },
      },
    },
    async (request, reply) => {
      await ctx.machines.removeSnapshot(request.params.id);
      reply.code(204);
      return null;
    },
  );

  app.post(
    '/api/v1/machines/:name/fork',
    {
      schema: {
        tags,
        summary:
          'Snapshot the machine and start independent copies of it (machine fork): each has its own identity and network, and runs the processes the source ran',
        params: NameParams,
        body: ForkBody,
        response: { 201: ForkResult, ...errors(400, 401, 404, 409, 413, 415, 422, 500) },
      },
    },
    async (request, reply) => {
      const { names, name, count } = request.body;
      if ((names === undefined) === (name === undefined) || (count !== undefined && name === undefined)) {
        throw new HttpError(
          400,
          'invalid-request',
          'give either names (the new machines) or name (with count for NAME-1..NAME-COUNT), not both',
        );
      }
      const list = names ?? forkNames(name!, count);
      for (const n of list) validateMachineName(n);
      const source = ctx.machines.store.get(request.params.name);
      const prepared = await machineBootImage(ctx, source);
      const forked = await ctx.machines.forkMachine(request.params.name, list, {
        ...snapshotMachineOptions(request.body),
        start: prepared ? { imageErofs: prepared.erofsPath } : {},
      });
      const copies = await Promise.all(forked.machines.map(async (n) => machineDetails(await ctx.machines.status(n))));
      reply.code(201);
      return { snapshot: snapshotSummary(forked.snapshot), machines: copies };
    },
  );

  app.post(
    '/api/v1/runs',
    {
      schema: {
        tags,
        summary:
          'An ephemeral machine (machine run -d): created and started in one call, returns once its agent is ready and init ran; POST .../stop removes it with its disks',
        body: RunBody,
        response: { 201: Machine, ...errors(400, 409, 413, 415, 422, 500) },
      },
    },
    async (request, reply) => {
      const body = request.body;
      if (body.name !== undefined) {
        validateMachineName(body.name);
        if (ctx.machines.store.exists(body.name))
          throw new ConflictError(`machine "${body.name}" already exists`, {
            remedy: 'choose another name, or leave it out for a generated one',
          });
      }
      const { input, imageErofs } = await machineInput(mergedWorkload(body), {
        pull: (ref) => ctx.pull(ref),
        base: ctx.base,
      });
      const result = await ctx.machines.runDetached(
        { ...input, ...(body.name !== undefined ? { name: body.name } : {}) },
        imageErofs ? { imageErofs } : {},
      );
      reply.code(201);
      return machineDetails(await ctx.machines.status(result.record.name));
    },
  );

  app.get(
    '/api/v1/machines/:name',
    {
      schema: {
        tags,
        summary: "A machine's state, settings and disk usage",
        params: NameParams,
        response: { 200: Machine, ...errors(400, 401, 404, 500) },
      },
    },
    async (request) => machineDetails(await ctx.machines.status(request.params.name)),
  );

  app.delete(
    '/api/v1/machines/:name',
    {
      schema: {
        tags,
        summary: 'Delete a machine and its disks (a running one only with force=true)',
        params: NameParams,
        querystring: DeleteQuery,
        response: { 204: { type: 'null', description: 'Deleted' }, ...errors(400, 401, 404, 409, 500) },
      },
    },
    async (request, reply) => {
      await ctx.machines.delete(request.params.name, { force: request.query.force === true });
      reply.code(204);
      return null;
    },
  );

  app.post(
    '/api/v1/machines/:name/start',
    {
      schema: {
        tags,
        summary: 'Boot the machine; returns once its agent is ready and [dev] init ran (no-op when running)',
        params: NameParams,
        response: { 200: StartResult, ...errors(400, 401, 404, 409, 422, 500) },
      },
    },
    async (request) => {
      const { name } = request.params;
      const prepared = await machineBootImage(ctx, ctx.machines.store.get(name));
      const result = await ctx.machines.start(name, prepared ? { imageErofs: prepared.erofsPath } : {});
      return {
        machine: machineDetails(await ctx.machines.status(name)),
        alreadyRunning: result.alreadyRunning,
        ...(result.bootMs !== undefined ? { bootMs: result.bootMs } : {}),
      };
    },
  );

  app.post(
    '/api/v1/machines/:name/stop',
    {
      schema: {
        tags,
        summary: 'Graceful power-off, killed after the timeout; an ephemeral machine is removed',
        params: NameParams,
        body: StopBody,
        response: { 200: StopResult, ...errors(400, 401, 404, 409, 500) },
      },
    },
    async (request) => {
      const { name } = request.params;
      const { ephemeral } = ctx.machines.store.get(name);
      const wasRunning = await ctx.machines.stop(name, { timeoutMs: (request.body?.timeoutSeconds ?? 30) * 1000 });
      return { name, wasRunning, removed: ephemeral === true };
    },
  );

  app.post(
    '/api/v1/machines/:name/exec',
    {
      schema: {
        tags,
        summary: 'Run a command; returns its exit code and output (each stream capped at 16 MiB)',
        params: NameParams,
        body: ExecBody,
        response: { 200: ExecResult, ...errors(400, 401, 404, 409, 413, 415, 500, 503) },
      },
    },
    async (request, reply): Promise<ExecResultT> => {
      const { name } = request.params;
      const started = await startExec(ctx, name, request.body);
      if ('shell' in started)
        return {
          exitCode: started.shell.exitCode,
          signal: null,
          stdout: '',
          stderr: `${started.shell.message}\n`,
          timedOut: false,
          truncated: false,
        };
      const { client, session } = started;
      let timedOut = false;
      let truncated = false;
      let cut: 'client' | 'shutdown' | undefined;
      const kill = () => void session.signal('SIGKILL').catch(() => undefined);
      const timer = setTimeout(
        () => {
          timedOut = true;
          kill();
        },
        (request.body.timeoutSeconds ?? DEFAULT_EXEC_TIMEOUT_S) * 1000,
      );
      const detach = onAbandon(reply, ctx.shutdown, (why) => {
        cut = why;
        kill();
      });
      try {
        const output = Promise.all([
          collect(session.stdout, () => (truncated = true)),
          collect(session.stderr, () => (truncated = true)),
        ]);
        const status = await session.exit;
        const [stdout, stderr] = await output;
        if (cut === 'shutdown')
          throw new HttpError(503, 'shutting-down', 'the server is shutting down; the command was killed');
        return { exitCode: exitCodeFor(status), signal: status.signal, stdout, stderr, timedOut, truncated };
      } catch (err) {
        throw lostMachine(name, err);
      } finally {
        clearTimeout(timer);
        detach();
        client.close();
      }
    },
  );

  app.post(
    '/api/v1/machines/:name/exec/stream',
    {
      schema: {
        tags,
        summary:
          'Run a command, streaming its output as server-sent events: stdout, stderr, then exit ({"exitCode":N,"signal":S}); closing the connection kills the process',
        params: NameParams,
        body: ExecBody,
        response: { 200: sse, ...errors(400, 401, 404, 409, 413, 415, 500) },
      },
    },
    async (request, reply) => {
      const { name } = request.params;
      const started = await startExec(ctx, name, request.body);
      reply.hijack();
      const events = new SseStream(reply.raw);
      if ('shell' in started) {
        events.send('stderr', `${started.shell.message}\n`);
        events.sendJson('exit', { exitCode: started.shell.exitCode, signal: null });
        events.end();
        return;
      }
      const { client, session } = started;
      const kill = () => void session.signal('SIGKILL').catch(() => undefined);
      const timer = request.body.timeoutSeconds ? setTimeout(kill, request.body.timeoutSeconds * 1000) : undefined;
      const detach = onAbandon(reply, ctx.shutdown, (why) => {
        if (why === 'shutdown')
          events.sendJson('shutdown', {
            error: 'the server is shutting down; the command was killed',
            code: 'shutting-down',
          });
        kill();
        // A client that is gone takes its connection, and with it its processes in the guest.
        if (why === 'client') client.close();
      });
      try {
        const output = Promise.all([
          events.pipeText(session.stdout, 'stdout'),
          events.pipeText(session.stderr, 'stderr'),
        ]);
        const status = await session.exit;
        await output;
        events.sendJson('exit', { exitCode: exitCodeFor(status), signal: status.signal });
      } catch (err) {
        const { body } = toHttpError(lostMachine(name, err));
        events.sendJson('error', body);
      } finally {
        if (timer) clearTimeout(timer);
        detach();
        client.close();
        events.end();
      }
    },
  );

  app.put(
    '/api/v1/machines/:name/files/*',
    {
      schema: {
        tags,
        summary:
          'Upload a file (application/octet-stream, Content-Length required) or a directory (application/x-tar holding one top-level directory named like the last path component); atomic in the machine, under 4 GiB',
        params: FileParams,
        // Described, not typed: the body is a stream handed on as it arrives, never a parsed value.
        body: {
          content: {
            'application/octet-stream': { schema: { description: "The file's bytes" } },
            'application/x-tar': { schema: { description: 'A tar of one directory' } },
          },
        },
        response: { 200: FileResult, ...errors(400, 401, 404, 409, 411, 413, 415, 422, 500) },
      },
    },
    async (request, reply) => {
      const { name } = request.params;
      const guestPath = guestPathOf(request.params['*']);
      const isTar = (request.headers['content-type'] ?? '').startsWith('application/x-tar');
      const length = request.headers['content-length'];
      if (!isTar && length === undefined)
        throw new HttpError(
          411,
          'length-required',
          'a file upload needs a Content-Length header (its size is checked against the 4 GiB cap before anything is written)',
        );
      const client = await ctx.machines.connect(name);
      const upload = ownedBody(request.body as Readable);
      try {
        if (isTar)
          return await uploadTar(
            client,
            { machine: name, path: path.posix.dirname(guestPath) },
            path.posix.basename(guestPath),
            upload.stream,
          );
        return await uploadFile(
          client,
          { machine: name, path: guestPath },
          { size: Number(length), mode: 0o644, name: path.posix.basename(guestPath) },
          upload.stream,
        );
      } catch (err) {
        // Refused before the body was read: answer, then close rather than read the rest.
        if (upload.abandon()) reply.header('connection', 'close');
        throw err;
      } finally {
        client.close();
      }
    },
  );

  app.get(
    '/api/v1/machines/:name/files/*',
    {
      schema: {
        tags,
        summary:
          'Download a file (application/octet-stream; X-Smolvm-Mode gives its permission bits) or a directory (application/x-tar)',
        params: FileParams,
        response: { 200: { content: { ...octets, ...tarball } }, ...errors(400, 401, 404, 409, 413, 500) },
      },
    },
    async (request, reply) => {
      const { name } = request.params;
      const guestPath = guestPathOf(request.params['*']);
      const client = await ctx.machines.connect(name);
      let entry;
      try {
        entry = await openGuestPath(client, { machine: name, path: guestPath });
      } catch (err) {
        client.close();
        throw err;
      }
      reply.raw.once('close', () => client.close());
      if (entry.kind === 'file') {
        const size = entry.size;
        // A guest that sends more than it announced is cut off: the length header is a promise to the client.
        const body = entry.data.pipe(
          byteCounter((n) => {
            if (n > size) throw new SmolvmError(`the machine sent more than the ${size} bytes it announced`);
          }),
        );
        return reply
          .type('application/octet-stream')
          .header('content-length', size)
          .header('x-smolvm-mode', (entry.mode & 0o777).toString(8).padStart(4, '0'))
          .send(body);
      }
      return reply.type('application/x-tar').send(entry.data);
    },
  );

  app.get(
    '/api/v1/machines/:name/logs',
    {
      schema: {
        tags,
        summary: "The machine's log (supervisor, init output, denials) as `log` events; follow=true keeps streaming",
        params: NameParams,
        querystring: LogsQuery,
        response: { 200: sse, ...errors(400, 401, 404, 500) },
      },
    },
    async (request, reply) => {
      const { name } = request.params;
      ctx.machines.store.get(name);
      const file = ctx.machines.files(name).supervisorLog;
      const first = lastLines(file, request.query.tail ?? LOG_TAIL_DEFAULT);
      reply.hijack();
      const events = new SseStream(reply.raw);
      for (const line of first.lines) events.send('log', line);
      if (!request.query.follow) {
        events.end();
        return;
      }
      const pos = { offset: first.offset, ino: first.ino };
      await new Promise<void>((resolve) => {
        const timer = setInterval(() => {
          if (events.closed) return stop();
          for (const line of readMore(file, pos)) events.send('log', line);
        }, LOG_POLL_MS);
        const detach = onAbandon(reply, ctx.shutdown, (why) => {
          if (why === 'shutdown')
            events.sendJson('shutdown', { error: 'the server is shutting down', code: 'shutting-down' });
          stop();
        });
        function stop() {
          clearInterval(timer);
          detach();
          events.end();
          resolve();
        }
      });
    },
  );

  app.post(
    '/api/v1/machines/:name/images/pull',
    {
      schema: {
        tags,
        summary:
          "Pull the machine's pinned image (by digest) if the local store lacks it. With Accept: text/event-stream, progress events then done (or error); else the final JSON",
        params: NameParams,
        body: PullBody,
        response: {
          200: { content: { 'application/json': { schema: PullResult }, 'text/event-stream': { schema: SseText } } },
          ...errors(400, 401, 404, 500),
        },
      },
    },
    async (request, reply) => {
      const record = ctx.machines.store.get(request.params.name);
      const result = (prepared: PreparedImage | undefined) => ({
        image: record.image ?? null,
        digest: prepared?.manifestDigest ?? record.imageDigest ?? null,
      });
      if (!(request.headers.accept ?? '').includes('text/event-stream')) {
        return reply.type('application/json').send(result(await machineBootImage(ctx, record)));
      }
      reply.hijack();
      const events = new SseStream(reply.raw);
      try {
        const prepared = await machineBootImage(ctx, record, (ref) =>
          ctx.pull(ref, (e) => {
            if (e.type === 'resolved')
              events.sendJson('progress', { type: e.type, manifestDigest: e.manifestDigest, totalBytes: e.totalBytes });
            else if (e.type === 'blob-progress')
              events.sendJson('progress', { type: e.type, bytes: e.overallBytes, totalBytes: e.overallTotal });
          }),
        );
        events.sendJson('done', result(prepared));
      } catch (err) {
        events.sendJson('error', toHttpError(err).body);
      } finally {
        events.end();
      }
    },
  );
}

export { ErrorBody };
