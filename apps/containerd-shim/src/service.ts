// The containerd task service (containerd.task.v2.Task) over smolvm VMs: each task is one
// micro-VM whose root is the container's rootfs (shared over 9p); its init process and every
// exec are processes the guest agent runs. Events go to containerd as they happen.
import os from 'node:os';
import path from 'node:path';
import type { ExecSession } from '@smolvm/agent-protocol';
import { exitCodeFor, startVm, type Vm } from '@smolvm/runtime';
import { releasePendingOpens, wireIo, type ProcessIo, type Wiring } from './io';
import { mountRootfs, unmountRootfs, type Mount } from './mounts';
import { parseProcess, readBundle, type ProcessSpec } from './oci';
import { timestamp } from './proto';
import { Code, TtrpcError, type ServiceDefinition } from './ttrpc';
import type { Publisher } from './events';
import { writeVmRecord } from './vm-record';

/** containerd.v1.types.Status */
const enum Status {
  Created = 1,
  Running = 2,
  Stopped = 3,
}

/** 128 + SIGKILL: what a process reports when its VM went away under it. */
const LOST_EXIT = 137;

class Proc {
  status = Status.Created;
  pid = 0;
  exitStatus = 0;
  exitedAt: number | undefined;
  session: ExecSession | undefined;
  wiring: Wiring | undefined;
  private settle!: () => void;
  readonly exited = new Promise<void>((resolve) => (this.settle = resolve));

  constructor(
    readonly execId: string,
    readonly spec: ProcessSpec,
    readonly io: ProcessIo,
  ) {}

  finish(exitStatus: number): boolean {
    if (this.status === Status.Stopped) return false;
    this.status = Status.Stopped;
    this.exitStatus = exitStatus;
    this.exitedAt = Date.now();
    this.settle();
    return true;
  }
}

interface Task {
  id: string;
  bundle: string;
  rootfs: string;
  mounted: boolean;
  vm: Vm;
  init: Proc;
  execs: Map<string, Proc>;
}

export interface ShimOptions {
  namespace: string;
  publisher: Publisher;
  agentBundle: string;
  log: (line: string) => void;
  /** Called once Shutdown found no task left: the shim may exit. */
  onShutdown: () => void;
}

type Req = Record<string, unknown>;
const str = (r: Req, k: string) => (typeof r[k] === 'string' ? (r[k] as string) : '');

export class TaskService {
  private readonly tasks = new Map<string, Task>();
  private readonly creating = new Set<string>();

  constructor(private readonly options: ShimOptions) {}

  definition(): ServiceDefinition {
    const notImplemented = (what: string) => async () => {
      throw new TtrpcError(Code.Unimplemented, `${what} is not implemented by the smolvm shim`);
    };
    return {
      name: 'containerd.task.v2.Task',
      methods: {
        Create: (r) => this.create(r),
        Start: (r) => this.start(r),
        State: async (r) => this.state(r),
        Wait: (r) => this.wait(r),
        Kill: (r) => this.kill(r),
        Delete: (r) => this.delete(r),
        Exec: async (r) => this.exec(r),
        ResizePty: (r) => this.resizePty(r),
        CloseIO: async (r) => this.closeIo(r),
        Pids: async (r) => this.pids(r),
        Connect: async (r) => this.connect(r),
        Shutdown: async (r) => this.shutdown(r),
        Pause: notImplemented('pause'),
        Resume: notImplemented('resume'),
        Checkpoint: notImplemented('checkpoint'),
        Update: notImplemented('update'),
        Stats: notImplemented('stats'),
      },
    };
  }

  private task(id: string): Task {
    const task = this.tasks.get(id);
    if (!task) throw new TtrpcError(Code.NotFound, `task ${id} not found`);
    return task;
  }

  private proc(task: Task, execId: string): Proc {
    if (!execId) return task.init;
    const proc = task.execs.get(execId);
    if (!proc) throw new TtrpcError(Code.NotFound, `process ${execId} of task ${task.id} not found`);
    return proc;
  }

  private async create(r: Req): Promise<Req> {
    const id = str(r, 'id');
    const bundle = str(r, 'bundle');
    if (this.tasks.has(id) || this.creating.has(id))
      throw new TtrpcError(Code.AlreadyExists, `task ${id} already exists`);
    if (r.checkpoint)
      throw new TtrpcError(Code.Unimplemented, 'restoring a checkpoint is not implemented by the smolvm shim');
    this.creating.add(id);
    try {
      let spec;
      try {
        spec = readBundle(bundle);
      } catch (err) {
        throw new TtrpcError(Code.InvalidArgument, (err as Error).message);
      }
      const t0 = performance.now();
      const mounts = (r.rootfs as Mount[] | undefined) ?? [];
      const rootfs = mounts.length > 0 ? path.join(bundle, 'rootfs') : spec.rootPath;
      if (mounts.length > 0) await mountRootfs(mounts, rootfs);
      const mounted = performance.now();
      let vm: Vm;
      try {
        vm = await startVm({
          cpus: spec.cpus,
          memoryMiB: spec.memoryMiB,
          rootShare: rootfs,
          volumes: spec.mounts,
          agentBundle: this.options.agentBundle,
          onNote: (m) => this.options.log(`task ${id}: ${m}`),
        });
      } catch (err) {
        if (mounts.length > 0) await unmountRootfs(rootfs);
        throw err;
      }
      writeVmRecord(bundle, vm.handle.pid);
      const t = vm.timings;
      // One line per task on where its start went (tools/bench/shim.ts reads it).
      this.options.log(
        `task ${id}: timings rootfs=${Math.round(mounted - t0)}ms vm=${t.setUp}ms (spawned=${t.spawned} agentReady=${t.agentReady} setUp=${t.setUp})`,
      );
      const io: ProcessIo = {
        stdin: str(r, 'stdin'),
        stdout: str(r, 'stdout'),
        stderr: str(r, 'stderr'),
        terminal: r.terminal === true,
      };
      const init = new Proc('', spec.process, io);
      init.pid = vm.handle.pid;
      const task: Task = { id, bundle, rootfs, mounted: mounts.length > 0, vm, init, execs: new Map() };
      this.tasks.set(id, task);
      // A VM that ends on its own (crash, guest power-off) ends every process it held.
      void vm.handle.wait().then((exit) => {
        if (task.init.status !== Status.Stopped)
          this.options.log(`task ${id}: the VM ended (${exit.reason}) before its process did`);
        this.finishAll(task, LOST_EXIT);
      });
      await this.options.publisher.publish('/tasks/create', 'containerd.events.TaskCreate', {
        containerId: id,
        bundle,
        rootfs: mounts,
        io: { stdin: io.stdin, stdout: io.stdout, stderr: io.stderr, terminal: io.terminal },
        pid: init.pid,
      });
      return { pid: init.pid };
    } finally {
      this.creating.delete(id);
    }
  }

  private async start(r: Req): Promise<Req> {
    const task = this.task(str(r, 'id'));
    const proc = this.proc(task, str(r, 'execId'));
    if (proc.status !== Status.Created)
      throw new TtrpcError(Code.FailedPrecondition, `process ${proc.execId || task.id} was started already`);
    if (proc.execId && task.init.status !== Status.Running)
      throw new TtrpcError(Code.FailedPrecondition, `task ${task.id} is not running`);
    const { spec } = proc;
    let session: ExecSession;
    try {
      session = await task.vm.exec({
        argv: spec.argv,
        env: spec.env,
        cwd: spec.cwd,
        user: spec.user,
        stdin: proc.io.stdin !== '',
        ...(proc.io.terminal
          ? {
              tty: {
                rows: spec.consoleSize?.rows ?? 24,
                cols: spec.consoleSize?.cols ?? 80,
                term: spec.env.TERM ?? 'xterm',
              },
            }
          : {}),
      });
    } catch (err) {
      // Like runc: a process that cannot start fails Start (containerd reports the message).
      throw new TtrpcError(Code.FailedPrecondition, `${spec.argv[0]}: ${(err as Error).message}`);
    }
    proc.session = session;
    proc.status = Status.Running;
    if (proc.execId) proc.pid = session.pid;
    proc.wiring = wireIo(session, proc.io);
    if (proc.execId)
      await this.options.publisher.publish('/tasks/exec-started', 'containerd.events.TaskExecStarted', {
        containerId: task.id,
        execId: proc.execId,
        pid: proc.pid,
      });
    else
      await this.options.publisher.publish('/tasks/start', 'containerd.events.TaskStart', {
        containerId: task.id,
        pid: proc.pid,
      });
    const wiring = proc.wiring;
    void session.exit.then(
      async (status) => {
        await wiring.outputDone;
        this.exitProc(task, proc, exitCodeFor(status));
      },
      async () => {
        await wiring.outputDone;
        this.exitProc(task, proc, LOST_EXIT);
      },
    );
    return { pid: proc.pid };
  }

  /** A process ended: its exit event, and for the init process the end of its VM. */
  private exitProc(task: Task, proc: Proc, code: number): void {
    if (!proc.finish(code)) return;
    proc.wiring?.release();
    void this.options.publisher.publish('/tasks/exit', 'containerd.events.TaskExit', {
      containerId: task.id,
      id: proc.execId || task.id,
      pid: proc.pid,
      exitStatus: code,
      exitedAt: timestamp(proc.exitedAt ?? Date.now()),
    });
    // As with runc: when the container's init ends, so does everything else in it.
    if (!proc.execId) void task.vm.dispose().then(() => this.finishAll(task, LOST_EXIT));
  }

  private finishAll(task: Task, code: number): void {
    for (const proc of [...task.execs.values(), task.init]) this.exitProc(task, proc, code);
  }

  private state(r: Req): Req {
    const task = this.task(str(r, 'id'));
    const proc = this.proc(task, str(r, 'execId'));
    return {
      id: task.id,
      bundle: task.bundle,
      pid: proc.pid,
      status: proc.status,
      stdin: proc.io.stdin,
      stdout: proc.io.stdout,
      stderr: proc.io.stderr,
      terminal: proc.io.terminal,
      exitStatus: proc.exitStatus,
      exitedAt: timestamp(proc.exitedAt ?? 0),
      execId: proc.execId,
    };
  }

  private async wait(r: Req): Promise<Req> {
    const task = this.task(str(r, 'id'));
    const proc = this.proc(task, str(r, 'execId'));
    await proc.exited;
    return { exitStatus: proc.exitStatus, exitedAt: timestamp(proc.exitedAt ?? Date.now()) };
  }

  private async kill(r: Req): Promise<Req> {
    const task = this.task(str(r, 'id'));
    const proc = this.proc(task, str(r, 'execId'));
    const number = typeof r.signal === 'number' ? r.signal : 0;
    const name = signalName(number);
    if (!name) throw new TtrpcError(Code.InvalidArgument, `signal ${number} is not a signal this host knows`);
    const targets = r.all === true && !proc.execId ? [proc, ...task.execs.values()] : [proc];
    if (proc.status === Status.Stopped) throw new TtrpcError(Code.NotFound, 'process already finished');
    for (const p of targets) {
      if (
        p.status === Status.Created &&
        !p.execId &&
        (number === os.constants.signals.SIGKILL || number === os.constants.signals.SIGTERM)
      ) {
        // Killed before it started: the VM goes, the process never ran.
        await task.vm.kill();
        this.exitProc(task, p, 128 + number);
      } else if (p.status === Status.Running && p.session) {
        await p.session.signal(name).catch(() => undefined);
      }
    }
    return {};
  }

  private async delete(r: Req): Promise<Req> {
    const task = this.task(str(r, 'id'));
    const execId = str(r, 'execId');
    const proc = this.proc(task, execId);
    if (proc.status === Status.Running)
      throw new TtrpcError(Code.FailedPrecondition, `process ${execId || task.id} is still running`);
    const answer = { pid: proc.pid, exitStatus: proc.exitStatus, exitedAt: timestamp(proc.exitedAt ?? Date.now()) };
    if (execId) {
      task.execs.delete(execId);
    } else {
      // A task whose process ended is being powered off with its writes synced (rootfs, volumes):
      // wait for that. One never started has nothing to keep.
      if (proc.status === Status.Stopped) await task.vm.dispose();
      else await task.vm.kill();
      this.finishAll(task, LOST_EXIT);
      if (task.mounted) await unmountRootfs(task.rootfs);
      this.tasks.delete(task.id);
    }
    await this.options.publisher.publish('/tasks/delete', 'containerd.events.TaskDelete', {
      containerId: task.id,
      id: execId,
      ...answer,
    });
    return answer;
  }

  private exec(r: Req): Req {
    const task = this.task(str(r, 'id'));
    const execId = str(r, 'execId');
    if (!execId) throw new TtrpcError(Code.InvalidArgument, 'an exec needs an id');
    if (task.execs.has(execId))
      throw new TtrpcError(Code.AlreadyExists, `process ${execId} already exists in task ${task.id}`);
    if (task.init.status === Status.Stopped) throw new TtrpcError(Code.FailedPrecondition, `task ${task.id} has ended`);
    const any = r.spec as { value?: Buffer } | null;
    let spec: ProcessSpec;
    try {
      spec = parseProcess(JSON.parse(Buffer.from(any?.value ?? []).toString('utf8')), `exec ${execId}`);
    } catch (err) {
      throw new TtrpcError(Code.InvalidArgument, (err as Error).message);
    }
    task.execs.set(
      execId,
      new Proc(execId, spec, {
        stdin: str(r, 'stdin'),
        stdout: str(r, 'stdout'),
        stderr: str(r, 'stderr'),
        terminal: r.terminal === true,
      }),
    );
    void this.options.publisher.publish('/tasks/exec-added', 'containerd.events.TaskExecAdded', {
      containerId: task.id,
      execId,
    });
    return {};
  }

  private async resizePty(r: Req): Promise<Req> {
    const proc = this.proc(this.task(str(r, 'id')), str(r, 'execId'));
    if (proc.session && proc.io.terminal)
      await proc.session.resize(Number(r.height) || 24, Number(r.width) || 80).catch(() => undefined);
    return {};
  }

  private closeIo(r: Req): Req {
    const proc = this.proc(this.task(str(r, 'id')), str(r, 'execId'));
    if (r.stdin === true) proc.wiring?.closeStdin();
    return {};
  }

  private pids(r: Req): Req {
    const task = this.task(str(r, 'id'));
    const running = [task.init, ...task.execs.values()].filter((p) => p.status === Status.Running);
    return { processes: running.map((p) => ({ pid: p.pid })) };
  }

  private connect(r: Req): Req {
    const task = this.tasks.get(str(r, 'id'));
    return { shimPid: process.pid, taskPid: task?.init.pid ?? 0, version: '' };
  }

  private shutdown(_r: Req): Req {
    if (this.tasks.size === 0 && this.creating.size === 0) {
      releasePendingOpens();
      setImmediate(() => this.options.onShutdown());
    }
    return {};
  }

  /** Ends every VM (the shim is going away). */
  async close(): Promise<void> {
    await Promise.all(
      [...this.tasks.values()].map(async (t) => {
        await t.vm.kill();
        if (t.mounted) await unmountRootfs(t.rootfs);
      }),
    );
  }
}

function signalName(n: number): string | undefined {
  return Object.entries(os.constants.signals).find(([, v]) => v === n)?.[0];
}
