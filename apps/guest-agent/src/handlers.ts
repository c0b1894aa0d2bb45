// The protocol handlers the agent serves, wired to processes and (in a VM) the guest system.
import {
  AgentRequestError,
  rootSetupOf,
  type AgentHandlers,
  type ExecProcess,
  type SetupSpec,
} from '@smolvm/agent-protocol';
import { prepareCommand } from './command';
import { execWithPipes } from './exec-pipes';
import { execWithPty } from './exec-pty';
import type { ExecRoot, GuestSystem } from './system';
import { getFile, installFile, putFile } from './files';
import { getTree, installTree, putTree } from './tree';
import { listenSshAgent, type OpenRelay } from './ssh-agent';
import { collectGarbage, warmExecPath } from './warm-up';
import { createIdleTrimmer } from './idle-trim';

export interface HandlerOptions {
  /** The VM's privileged operations; absent when serving on a host (tests): exec only. */
  system?: GuestSystem;
  /** A busybox binary for `setsid -c` in tty mode (in the VM: /proc/self/fd/N of the agent image's). */
  busybox: string;
  lingerMs?: number;
  /** Opens a relay to the host over the current connection (SSH agent forwarding). */
  openRelay?: OpenRelay;
  /** Idle time before the page cache is dropped (idle-trim.ts); tests shorten it. */
  idleTrimMs?: number;
}

export interface Handlers extends AgentHandlers {
  /** SIGKILLs every process still running (tests clean up with it; a VM just powers off). */
  killAll(): void;
}

export function createHandlers(opts: HandlerOptions): Handlers {
  const { system } = opts;
  /** The run's setup (or the default root a first exec built). */
  let setup: Promise<void> | null = null;
  /** A root built by setupRoot (before a boot snapshot): what a later setup must ask for again. */
  let root: { key: string; done: Promise<void> } | null = null;
  const running = new Set<ExecProcess>();
  /** The setup when every exec gets a root of its own (execRoot 'fresh'). */
  let freshRoots: SetupSpec | null = null;
  /** SSH_AUTH_SOCK for every exec once forwarding is set up (the request's env still wins). */
  let sshAuthSock: string | undefined;
  /** The run's 9p volumes (setup), which `shares` detaches around a machine snapshot. */
  let volumes: NonNullable<SetupSpec['volumes']> = [];
  const unsupported = (op: string) => new AgentRequestError(op, 'unsupported', 'not available outside a VM');
  const trimmer = system && createIdleTrimmer(() => system.trimMemory(), opts.idleTrimMs);
  /**
   * File requests in flight. Their path lookups run on libuv's threads and resolve against the
   * process's root, which an exec in a root of its own changes for a moment: it waits for none.
   */
  let fileRequests = 0;
  const noFileRequests: Array<() => void> = [];
  const busy = async <T>(work: () => Promise<T>): Promise<T> => {
    trimmer?.begin();
    fileRequests++;
    try {
      return await work();
    } finally {
      trimmer?.end();
      if (--fileRequests === 0) for (const wake of noFileRequests.splice(0)) wake();
    }
  };
  const fileRequestsDone = async () => {
    while (fileRequests > 0) await new Promise<void>((resolve) => noFileRequests.push(resolve));
  };
  // A bare VM needs no setup request: the first exec (or copy) builds the default root.
  const rootReady = async () => {
    if (system && !setup && !root) setup = system.setup({});
    await (setup ?? root?.done);
  };
  return {
    putFile(req, data) {
      return busy(async () => {
        await rootReady();
        return putFile(req, data);
      });
    },
    putTree(req, data) {
      return busy(async () => {
        await rootReady();
        return putTree(req, data, opts.busybox);
      });
    },
    installTree(req) {
      return busy(async () => {
        await rootReady();
        return installTree(req, opts.busybox);
      });
    },
    getTree(req, out) {
      return busy(async () => {
        await rootReady();
        return getTree(req, out, opts.busybox);
      });
    },
    installFile(req) {
      return busy(async () => {
        await rootReady();
        return installFile(req);
      });
    },
    getFile(req, out) {
      return busy(async () => {
        await rootReady();
        return getFile(req, out);
      });
    },
    async exec(req, io) {
      trimmer?.begin();
      let proc: ExecProcess;
      let own: ExecRoot | undefined;
      try {
        await rootReady();
        if (system && freshRoots) {
          await fileRequestsDone();
          // From here to the spawn nothing yields: no file request starts in between.
          own = system.execRoot(freshRoots);
        }
        // Synchronous up to the spawn: in an exec root of its own, the command is found and started there.
        const start = () => {
          const cmd = prepareCommand(sshAuthSock ? { ...req, env: { SSH_AUTH_SOCK: sshAuthSock, ...req.env } } : req);
          return req.tty
            ? execWithPty(req, cmd, io, opts.busybox, opts.lingerMs)
            : execWithPipes(req, cmd, io, opts.lingerMs);
        };
        proc = await (own ? own.enter(start) : start());
      } catch (err) {
        own?.remove();
        trimmer?.end();
        throw err;
      }
      running.add(proc);
      void proc.exited.finally(() => {
        running.delete(proc);
        own?.remove();
        trimmer?.end();
      });
      return proc;
    },
    async setupRoot(spec) {
      if (!system) throw unsupported('setupRoot');
      if (setup || root) throw new AgentRequestError('setupRoot', 'bad-request', 'the guest root is already set up');
      const done = system.setupRoot(spec);
      root = { key: JSON.stringify(rootSetupOf(spec)), done };
      await done;
    },
    async setup(spec) {
      if (!system) throw unsupported('setup');
      if (setup)
        throw new AgentRequestError(
          'setup',
          'bad-request',
          'the guest root is already set up (setup must come before the first exec)',
        );
      volumes = spec.volumes ?? [];
      let base: Promise<void>;
      if (root) {
        // A restored VM: its root was built before the snapshot; only the run is configured now.
        if (JSON.stringify(rootSetupOf(spec)) !== root.key) {
          throw new AgentRequestError(
            'setup',
            'bad-request',
            'the guest root was built for another image or disks (setupRoot); it cannot be set up again',
          );
        }
        base = root.done.then(() => system.configure(spec));
      } else {
        base = system.setup(spec);
      }
      setup = base.then(async () => {
        if (spec.execRoot === 'fresh') freshRoots = spec;
        if (!spec.sshAgent) return;
        if (!opts.openRelay)
          throw new AgentRequestError('setup', 'unsupported', 'this agent cannot relay an SSH agent');
        await listenSshAgent(spec.sshAgent.socket, opts.openRelay);
        sshAuthSock = spec.sshAgent.socket;
      });
      await setup;
    },
    setTime(epochMs) {
      if (!system) throw unsupported('setTime');
      system.setTime(epochMs);
    },
    async prepareSnapshot() {
      if (setup)
        throw new AgentRequestError(
          'prepareSnapshot',
          'bad-request',
          'the guest root is already set up: a snapshot now would hold it',
        );
      // An exec through the whole protocol stack (a second, root-less handler set behind a local
      // socket): restored VMs then find its code compiled and its object shapes settled.
      await warmExecPath(createHandlers({ busybox: opts.busybox }));
      // An empty young generation: a restored VM's first requests then allocate without a GC.
      collectGarbage();
    },
    async shares(spec) {
      if (!system) throw unsupported('shares');
      await setup;
      system.shares(volumes, spec.mounted);
    },
    identity(spec) {
      if (!system) throw unsupported('identity');
      system.identity(spec);
    },
    reseed(entropy) {
      if (!system) throw unsupported('reseed');
      system.reseed(entropy);
    },
    async prepareShutdown() {
      await system?.prepareShutdown();
    },
    powerOff() {
      system?.powerOff();
    },
    killAll() {
      trimmer?.close();
      for (const proc of running) proc.signal('SIGKILL');
    },
  };
}
