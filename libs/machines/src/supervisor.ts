// The per-VM supervisor (docs/architecture.md#persistent-machines): a detached process `machine start` leaves behind.
// It boots the machine's VM, runs the [dev] init commands, then serves the agent protocol on a unix socket
// so later commands (exec, cp, stop, status) reach the guest through it. It relays requests to
// the VM's agent rather than handing out the agent channel, so any number of clients share one
// VM and a client that vanishes only takes its own processes with it.
//
// Start-up handshake with the starting command, over an inherited socket (fd 3): one JSON line
// with the outcome, then the starter commits the record and answers "ack". Without the ack (the
// starter died), the supervisor powers the VM off again: no VM is ever left that no record names.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  SmolvmError,
  currentProcessIdentity,
  processStartTime,
  smolvmDirs,
  withTimeout,
  writeJsonAtomic,
} from '@smolvm/common';
import { AgentServer, type AgentHandlers, type ExecSession } from '@smolvm/agent-protocol';
import { MachineStore, type MachineRecord } from '@smolvm/machine-store';
import {
  createRunDir,
  runInitCommands,
  startVm,
  type GuestAssets,
  type PrestartedRun,
  type RunRecipe,
  type StartVmOptions,
  type Vm,
} from '@smolvm/runtime';
import { formatDenial } from '@smolvm/netpolicy';
import { GUEST_INBOX, machineFiles } from './layout';
import { machinePackBoot } from './from-pack';
import { resetInbox, stageUpload } from './inbox';
import { RateLimitedLines, SupervisorLog } from './supervisor-log';
import { copyDiskSparse } from './disks';
import { SnapshotError } from '@smolvm/driver-api';
import { recordGuestFiles } from './snapshot-pack';
import { SNAPSHOT_DISKS, SNAPSHOT_VM_DIR, SnapshotStore, snapshotsRoot, type SnapshotMeta } from './snapshot-store';

export interface SupervisorOptions {
  record: MachineRecord;
  store: MachineStore;
  /** Not needed by machines made from a pack (they boot its agent image). */
  agentBundle?: string;
  guestAssets?: GuestAssets;
  imageErofs?: string;
  /** Boot instead of restoring the boot snapshot of the machine's shape (`machine start --cold`). */
  cold?: boolean;
  /** Inherited socket to the starting command. */
  controlFd: number;
  env?: NodeJS.ProcessEnv;
  /** The restore this process began before it loaded (the CLI's early start), if any. */
  prestarted?: PrestartedRun;
  /** The restore as the next start can begin it early (no NIC); kept by the caller. */
  onRestoreRecipe?: (recipe: RunRecipe) => void;
}

/** The first line the supervisor sends its starter. */
export type StartReport =
  | {
      ok: true;
      pid: number;
      startTime: number | null;
      socket: string;
      vm: { pid: number; startTime: number | null };
      bootMs: number;
      /** Restored from a boot snapshot rather than booted. */
      restored?: boolean;
      /** Why the start did not come from a snapshot (`machine start --debug` prints them). */
      notes?: string[];
    }
  | { ok: false; message: string; remedy?: string; detail?: string[] };

/** How the VM of a machine last ended, for `machine status`. */
export interface LastExit {
  at: string;
  /** stopped: asked to (machine stop); vm: the VM ended on its own; supervisor: the supervisor failed. */
  cause: 'stopped' | 'vm' | 'supervisor';
  detail: string;
  consoleTail?: string[];
}

const ACK_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 10_000;
const PING_TIMEOUT_MS = 5_000;
const EPHEMERAL_REMOVE_LOCK_MS = 5_000;

/** Where the supervisor logs: stdout until runSupervisor knows the machine's log file. */
let out: Pick<SupervisorLog, 'write' | 'line'> = {
  write: (data) => void process.stdout.write(data),
  line: (message) => void process.stdout.write(`${new Date().toISOString()} ${message}\n`),
};

function log(message: string): void {
  out.line(message);
}

/** Runs the machine's init commands in order (output to the machine log); the first failure fails the start. */
function runInit(vm: Vm, record: MachineRecord): Promise<void> {
  return runInitCommands(vm, record.init, {
    env: envOf(record),
    ...(record.workdir ? { cwd: record.workdir } : {}),
    ...(record.user ? { user: record.user } : {}),
    onCommand: (command) => log(`init: ${command}`),
    onOutput: (d) => out.write(d),
    remedy: `fix the command in the Smolfile [dev] init (or --init) and ${record.ephemeral ? 'run it again' : 'create the machine again'}`,
  });
}

/**
 * The machine's NIC (held for the supervisor's lifetime, like the VM) and SSH agent relay, whose
 * host socket is the SSH_AUTH_SOCK `machine start` was run with. Denials and refused agent
 * requests go to the machine log, rate-limited by `denials` (the guest chooses how many there are).
 */
function networkOf(
  record: MachineRecord,
  denials: RateLimitedLines,
  needsNic = false,
): Pick<StartVmOptions, 'network' | 'sshAgent' | 'onSshAgentRefused'> {
  const network: StartVmOptions['network'] =
    record.net || record.ports.length > 0 || needsNic
      ? {
          outbound: record.net,
          allowHosts: record.allowHosts,
          allowCidrs: record.allowCidrs,
          ports: record.ports,
          onDenied: (d) => denials.line(formatDenial(d)),
          onWarning: (m) => log(`network: ${m}`),
        }
      : undefined;
  const sshAgent = record.sshAgent
    ? {
        sshAgent: true,
        onSshAgentRefused: (request: string) => denials.line(`ssh-agent: refused ${request} from the guest`),
      }
    : {};
  return { ...(network ? { network } : {}), ...sshAgent };
}

export function envOf(record: MachineRecord): Record<string, string> {
  return Object.fromEntries(record.env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
}

/** Handlers for one client connection, relaying to the VM's agent. */
function relayHandlers(
  vm: Vm,
  inbox: string,
  stop: () => Promise<void>,
  exit: () => void,
): AgentHandlers & { dropAll(): void } {
  const live = new Set<ExecSession>();
  return {
    async exec(req, io) {
      const session = await vm.exec({
        argv: req.argv,
        env: req.env,
        ...(req.cwd !== undefined ? { cwd: req.cwd } : {}),
        ...(req.user !== undefined ? { user: req.user } : {}),
        stdin: req.stdin,
        ...(req.tty ? { tty: req.tty } : {}),
      });
      live.add(session);
      void session.exit.finally(() => live.delete(session)).catch(() => undefined);
      if (io.stdin) io.stdin.pipe(session.stdin);
      session.stdout.pipe(io.stdout);
      session.stderr.pipe(io.stderr);
      return {
        pid: session.pid,
        exited: session.exit,
        signal: (name) => void session.signal(name).catch(() => undefined),
        resize: (rows, cols) => void session.resize(rows, cols).catch(() => undefined),
      };
    },
    // Uploads cross into the guest through the read-only inbox share, not the agent channel:
    // 9p reads are several times faster than virtio-console writes under TCG.
    async putFile(req, data) {
      const staged = await stageUpload(inbox, data, { size: req.size });
      try {
        return await vm.agent.installFile({
          source: `${GUEST_INBOX}/${staged.name}`,
          path: req.path,
          size: req.size,
          mode: req.mode,
          ...(req.name ? { name: req.name } : {}),
        });
      } finally {
        staged.remove();
      }
    },
    async putTree(req, data) {
      const staged = await stageUpload(inbox, data, { maxBytes: req.maxBytes });
      try {
        const result = await vm.agent.installTree({
          source: `${GUEST_INBOX}/${staged.name}`,
          path: req.path,
          name: req.name,
        });
        return { path: result.path, bytes: staged.bytes };
      } finally {
        staged.remove();
      }
    },
    async getTree(req, out) {
      const tree = await vm.agent.getTree({ path: req.path, maxBytes: req.maxBytes });
      tree.data.pipe(out);
      return tree.done;
    },
    async getFile(req, out) {
      const file = await vm.agent.getFile({ path: req.path, maxBytes: req.maxBytes });
      file.data.pipe(out);
      return { size: file.size, mode: file.mode };
    },
    async ping() {
      await withTimeout(vm.agent.ping(), PING_TIMEOUT_MS, 'the agent ping');
    },
    prepareShutdown: stop,
    powerOff: exit,
    /** The client went away: its processes go too, as with a closed ssh session. */
    dropAll() {
      for (const s of live) void s.signal('SIGKILL').catch(() => undefined);
      live.clear();
    },
  };
}

export async function runSupervisor(options: SupervisorOptions): Promise<void> {
  const { record, store } = options;
  const env = options.env ?? process.env;
  const files = machineFiles(store.machineDir(record.name));
  try {
    out = new SupervisorLog(1, files.supervisorLog);
  } catch {
    // stdout is not a file we can stat (closed): the stdout writer above stays.
  }
  // A guest sends denied packets as fast as it likes: a line for each would fill the disk.
  const denials = new RateLimitedLines(
    log,
    (n, seconds) => `${n} more denied attempts (network, ssh-agent) in the last ${seconds} s not logged`,
  );
  resetInbox(files.inbox);
  const control = new net.Socket({ fd: options.controlFd, readable: true, writable: true });
  const report = (r: StartReport) =>
    new Promise<void>((resolve) => control.write(JSON.stringify(r) + '\n', () => resolve()));
  const writeLastExit = (exit: LastExit) => {
    try {
      writeJsonAtomic(files.lastExit, exit);
    } catch {
      // The machine may be being deleted: nothing left to report to.
    }
  };
  let ackLine = '';
  const ack = new Promise<boolean>((resolve) => {
    control.on('data', (d: Buffer) => {
      ackLine += d.toString();
      if (ackLine.includes('\n')) resolve(ackLine.trim() === 'ack');
    });
    control.once('end', () => resolve(false));
    control.once('error', () => resolve(false));
    control.once('close', () => resolve(false));
  });

  log(
    `starting machine ${record.name} (${record.cpus} vCPUs, ${record.memoryMiB} MiB${record.image ? `, image ${record.image}` : ''})`,
  );
  const runDir = createRunDir('machine', env);
  const socketPath = path.join(runDir.path, 'control.sock');
  const t0 = performance.now();
  let vm: Vm | undefined;
  let server: net.Server | undefined;
  let snapshotServer: net.Server | undefined;
  const notes: string[] = [];
  let resume: ReturnType<typeof resumableSnapshot>;
  try {
    // A fork's first start resumes its snapshot's running VM (processes and all) instead of booting.
    resume =
      record.fromSnapshot && !record.runtime && !options.cold ? resumableSnapshot(record.fromSnapshot, env) : undefined;
    if (resume) log(`resuming snapshot ${resume.meta.id}`);
    vm = await startVm({
      cpus: record.cpus,
      memoryMiB: record.memoryMiB,
      // A machine made from a pack boots the pack's kernel, agent and image.
      ...(record.from
        ? await machinePackBoot(files.pack, smolvmDirs(env).cache, record.from)
        : options.imageErofs
          ? { imageErofs: options.imageErofs }
          : {}),
      volumes: [...record.volumes, { hostPath: files.inbox, guestPath: GUEST_INBOX, readOnly: true }],
      persistent: {
        overlayDisk: files.overlayDisk,
        storageDisk: files.storageDisk,
        format: record.fromSnapshot ? 'qcow2' : 'raw',
      },
      hostname: record.name,
      ...(resume ? { fromSnapshot: { stateDir: resume.stateDir } } : {}),
      ...(options.agentBundle ? { agentBundle: options.agentBundle } : {}),
      ...(options.guestAssets ? { guestAssets: options.guestAssets } : {}),
      env,
      ...networkOf(record, denials, resume?.meta.nic === true),
      bootSnapshot: !options.cold,
      ...(options.prestarted ? { prestarted: options.prestarted } : {}),
      // Bounded: a start makes a handful of notes at most, whatever the guest does.
      onNote: (message) => {
        log(`note: ${message}`);
        if (notes.length < 8) notes.push(message);
      },
    });
    // An ephemeral machine (run -d) never starts again: its recipe would only push out others.
    if (vm.restoreRecipe && !record.ephemeral) options.onRestoreRecipe?.(vm.restoreRecipe);
    // Resumed processes are running already: init ran in the source.
    if (!resume) await runInit(vm, record);
    server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server?.once('error', reject);
      server?.listen(socketPath, resolve);
    });
    snapshotServer = serveSnapshots(vm, record, path.join(runDir.path, SNAPSHOT_SOCKET), env);
  } catch (err) {
    if (vm) await vm.dispose(STOP_GRACE_MS);
    server?.close();
    snapshotServer?.close();
    runDir.remove();
    let e = err instanceof SmolvmError ? err : new SmolvmError((err as Error).message);
    // A snapshot's saved VM that does not restore here (another QEMU build, say): its disks still boot.
    if (resume && err instanceof SnapshotError)
      e = new SmolvmError(`cannot resume snapshot ${resume.meta.id}: ${e.message}`, {
        remedy: `start it with \`smolvm machine start --name ${record.name} --cold\` to boot its disks (the snapshot's processes do not run then), or use the QEMU that saved it`,
        ...(e.cause !== undefined ? { cause: e.cause } : {}),
      });
    const detail = typeof e.cause === 'string' ? e.cause.split('\n') : undefined;
    log(`start failed: ${e.message}`);
    await report({
      ok: false,
      message: e.message,
      ...(e.remedy ? { remedy: e.remedy } : {}),
      ...(detail ? { detail } : {}),
    });
    control.destroy();
    process.exitCode = 1;
    return;
  }
  const machineVm = vm;
  const listening = server;
  const bootMs = Math.round(performance.now() - t0);
  const t = machineVm.timings;
  // Where a start goes, for whoever wonders why one was slow: process start (Node + bundle) to
  // startVm, then startVm's own phases, then [dev] init.
  const phases = `process ${Math.round(process.uptime() * 1000 - bootMs)}, prepare ${t.prepared}, ${machineVm.restored ? 'restore' : 'boot'} ${t.agentReady - t.prepared}${t.prestartLead !== undefined ? ` (started early, ${t.prestartLead} ms ahead)` : ''}, setup ${t.setUp - t.agentReady}${machineVm.earlySetup ? ' (sent by the early start)' : ''}, init ${bootMs - t.setUp} ms`;
  log(
    `ready after ${bootMs} ms (${resume ? `resumed snapshot ${resume.meta.id}` : machineVm.restored ? 'restored from a boot snapshot' : 'booted'}; ${phases}; qemu pid ${machineVm.handle.pid})`,
  );

  let ending = false;
  const clients = new Set<AgentServer>();
  // How the VM ended, once known: the stop path records the VM's own word for it.
  let ended: LastExit | undefined;
  const finish = (exit: LastExit, code: number) => {
    if (!ended) writeLastExit(exit);
    listening.close();
    snapshotServer?.close();
    for (const c of clients) c.close();
    runDir.remove();
    denials.flush();
    log(`exited: ${exit.cause} (${exit.detail})`);
    // Let the last acknowledgement reach its client before the process goes.
    void removeIfEphemeral(exit).finally(() => setTimeout(() => process.exit(code), 50));
  };
  // An ephemeral machine (run -d) whose VM ended by itself (guest power-off, crash) or whose
  // starter went away has no one left to remove it; `machine stop` removes it on its own path.
  const removeIfEphemeral = async (exit: LastExit): Promise<void> => {
    if (!record.ephemeral || exit.cause === 'stopped') return;
    try {
      await store.delete(record.name, {
        timeoutMs: EPHEMERAL_REMOVE_LOCK_MS,
        guard: (current) => {
          if (current?.id !== record.id)
            throw new SmolvmError(`machine "${record.name}" is no longer the one this supervisor ran`);
        },
      });
    } catch (err) {
      log(`could not remove the ephemeral machine: ${(err as Error).message}`);
    }
  };
  const stop = async (why: string) => {
    if (ending) return;
    ending = true;
    log(`stopping (${why})`);
    const exit = await machineVm.dispose(STOP_GRACE_MS);
    ended = {
      at: new Date().toISOString(),
      cause: 'stopped',
      detail: `${why}; the VM ended: ${exit.detail ?? exit.reason}`,
    };
    writeLastExit(ended);
  };

  listening.on('connection', (socket) => {
    const handlers = relayHandlers(
      machineVm,
      files.inbox,
      () => stop('machine stop'),
      () => finish({ at: new Date().toISOString(), cause: 'stopped', detail: 'machine stop' }, 0),
    );
    const server = new AgentServer(socket, handlers, {
      agent: { supervisor: process.pid, machine: record.name, vmPid: machineVm.handle.pid },
    });
    clients.add(server);
    server.announce(true);
    void server.closed.then(() => {
      clients.delete(server);
      handlers.dropAll();
    });
  });

  // The VM ending by itself (guest crash, QEMU killed) ends the supervisor: status then says so.
  void machineVm.handle.wait().then((exit) => {
    if (ending) return;
    ending = true;
    finish(
      {
        at: new Date().toISOString(),
        cause: 'vm',
        detail: `${exit.reason}${exit.detail ? ` (${exit.detail})` : ''}${exit.signal ? `, ${exit.signal}` : exit.code !== null ? `, exit code ${exit.code}` : ''}`,
        consoleTail: machineVm.consoleTail(20),
      },
      1,
    );
  });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.on(signal, () => {
      void stop(signal).then(() =>
        finish({ at: new Date().toISOString(), cause: 'stopped', detail: `${signal} to the supervisor` }, 0),
      );
    });
  }

  const me = currentProcessIdentity();
  await report({
    ok: true,
    pid: me.pid,
    startTime: me.startTime,
    socket: socketPath,
    vm: { pid: machineVm.handle.pid, startTime: processStartTime(machineVm.handle.pid) },
    bootMs,
    restored: machineVm.restored,
    notes,
  });
  if (!(await withTimeout(ack, ACK_TIMEOUT_MS, 'waiting for the start command').catch(() => false))) {
    log('the start command went away before recording the machine; powering off');
    await stop('start abandoned');
    finish(
      {
        at: new Date().toISOString(),
        cause: 'supervisor',
        detail: 'the start command went away before recording the machine',
      },
      1,
    );
    return;
  }
  control.destroy();
}

/** Beside the control socket: where `snapshot create` asks the supervisor to save the running VM. */
export const SNAPSHOT_SOCKET = 'snapshot.sock';

/** What `snapshot create` sends (one JSON line) and gets back. */
export interface SnapshotRequest {
  /** The staging directory the snapshot is built in (under the snapshots' staging root). */
  dir: string;
}
export type SnapshotReply =
  { ok: true; pausedMs: number; nic: boolean } | { ok: false; message: string; remedy?: string };

function resumableSnapshot(id: string, env: NodeJS.ProcessEnv): { meta: SnapshotMeta; stateDir: string } | undefined {
  const store = new SnapshotStore(snapshotsRoot(env));
  const meta = store.verify(id);
  return meta.running ? { meta, stateDir: path.join(store.dir(id), SNAPSHOT_VM_DIR) } : undefined;
}

/**
 * Saves the running VM on request: one at a time, into a staging directory of the snapshot
 * store only. The guest is paused while its state is taken and its disks are copied.
 */
function serveSnapshots(vm: Vm, record: MachineRecord, socketPath: string, env: NodeJS.ProcessEnv): net.Server {
  const staging = path.join(snapshotsRoot(env), '.staging') + path.sep;
  const files = machineFiles(new MachineStore(MachineStore.defaultRoot(env)).machineDir(record.name));
  let busy = false;
  const server = net.createServer((socket) => {
    let line = '';
    socket.on('error', () => undefined);
    socket.on('data', (d: Buffer) => {
      line += d.toString();
      if (line.length > 4096) socket.destroy();
      if (!line.includes('\n')) return;
      void (async () => {
        let reply: SnapshotReply;
        try {
          const req = JSON.parse(line.slice(0, line.indexOf('\n'))) as SnapshotRequest;
          if (typeof req.dir !== 'string' || !path.isAbsolute(req.dir) || !path.resolve(req.dir).startsWith(staging))
            throw new SmolvmError('a snapshot is only written into the snapshot store');
          if (busy) throw new SmolvmError('another snapshot of this machine is being taken');
          busy = true;
          log('snapshot: requested');
          try {
            const dir = path.resolve(req.dir);
            fs.mkdirSync(path.join(dir, SNAPSHOT_VM_DIR), { mode: 0o700 });
            const t0 = performance.now();
            let pausedMs = 0;
            const format = record.fromSnapshot ? 'qcow2' : 'raw';
            // QEMU refuses to save a VM with a 9p share mounted: the guest lets go of them meanwhile.
            await vm.agent.shares({ mounted: false }).catch((err: Error) => {
              throw new SmolvmError(`the guest cannot let go of its shared folders for the snapshot: ${err.message}`, {
                remedy: 'stop the processes that use the -v folders (or the current directory in one), then try again',
              });
            });
            try {
              log('snapshot: pausing the VM to save it (shares detached)');
              await vm.snapshotRunning(path.join(dir, SNAPSHOT_VM_DIR), async () => {
                const copies = {
                  overlayDisk: path.join(dir, SNAPSHOT_DISKS.overlay),
                  storageDisk: path.join(dir, SNAPSHOT_DISKS.storage),
                };
                copyDiskSparse(files.overlayDisk, copies.overlayDisk, format);
                copyDiskSparse(files.storageDisk, copies.storageDisk, format);
                pausedMs = Math.round(performance.now() - t0);
                return copies;
              });
            } finally {
              await vm.agent.shares({ mounted: true });
            }
            if (vm.guestFiles) recordGuestFiles(path.join(dir, SNAPSHOT_VM_DIR), vm.guestFiles);
            log(`snapshot: saved (paused ${pausedMs} ms, ${Math.round(performance.now() - t0)} ms in all)`);
            reply = { ok: true, pausedMs, nic: vm.network !== undefined };
          } finally {
            busy = false;
          }
        } catch (err) {
          const e = err instanceof SmolvmError ? err : new SmolvmError((err as Error).message);
          log(`snapshot: failed: ${e.message}`);
          reply = { ok: false, message: e.message, ...(e.remedy ? { remedy: e.remedy } : {}) };
        }
        socket.end(JSON.stringify(reply) + '\n');
      })();
    });
  });
  server.on('error', (err) => log(`snapshot socket: ${err.message}`));
  server.listen(socketPath);
  return server;
}

export function readLastExit(file: string): LastExit | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as LastExit;
  } catch {
    return undefined;
  }
}

/** Entry point of the supervisor process (the CLI's hidden `machine _supervise`). */
export async function superviseMachine(options: {
  name: string;
  agentBundle?: string;
  guestAssets?: GuestAssets;
  imageErofs?: string;
  cold?: boolean;
  env?: NodeJS.ProcessEnv;
  prestarted?: PrestartedRun;
  onRestoreRecipe?: (recipe: RunRecipe) => void;
}): Promise<void> {
  const env = options.env ?? process.env;
  const store = new MachineStore(MachineStore.defaultRoot(env));
  await runSupervisor({
    record: store.get(options.name),
    store,
    agentBundle: options.agentBundle,
    guestAssets: options.guestAssets,
    imageErofs: options.imageErofs,
    cold: options.cold,
    controlFd: 3,
    env,
    ...(options.prestarted ? { prestarted: options.prestarted } : {}),
    ...(options.onRestoreRecipe ? { onRestoreRecipe: options.onRestoreRecipe } : {}),
  });
}
