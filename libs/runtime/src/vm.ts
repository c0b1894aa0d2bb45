// A running VM for one workload, as startVm() (start.ts) returns it: the agent, the driver's
// handle, and how it ends (a power-off through the agent, or at once) without leftovers.
import fs from 'node:fs';
import { withTimeout } from '@smolvm/common';
import type { AgentClient, AgentInfo, ExecOptions, ExecSession } from '@smolvm/agent-protocol';
import {
  SnapshotError,
  boundConsoleLog,
  readLogTail,
  type SnapshotCapability,
  type VmExit,
  type VmHandle,
} from '@smolvm/driver-api';
import type { Gateway } from '@smolvm/netpolicy';
import { OVERLAY_DISK_ID, STORAGE_DISK_ID } from './layout';
import type { RunRecipe } from './prestart';

/** Milliseconds from the start of startVm(). */
export interface BootTimings {
  prepared: number;
  spawned: number;
  agentReady: number;
  setUp: number;
  /** Milliseconds from an early start (StartVmOptions.prestarted) to startVm(), when one was used. */
  prestartLead?: number;
}

/** A file, or a byte range of one (a pack's section used in place). */
export interface GuestFile {
  path: string;
  range?: { offset: number; size: number };
}

export interface GuestFiles {
  driver: string;
  kernel: GuestFile;
  agentImage: GuestFile;
  image?: GuestFile;
  /** The packed executable the agent image's node is read from. */
  runtime?: GuestFile;
}

export class Vm {
  private disposing?: Promise<VmExit>;
  /** Run once the VM has ended (the network gateway, port listeners). */
  private readonly cleanups: Array<() => Promise<void>> = [];
  /** The VM's network gateway, when it has a NIC. */
  network?: Gateway;
  /**
   * Whether a stop must go through the guest (sync, power-off): true when something outside its
   * RAM may hold its writes (9p volumes, machine disks). A VM whose whole state is its RAM is
   * simply ended: nothing is lost, and the run finishes sooner.
   */
  flushOnStop = true;
  /** A restored VM: how to begin the next identical restore early (see prestart.ts). */
  restoreRecipe?: RunRecipe;
  /** The setup an early start sent this guest (EARLY_SETUP_OPS) and their answers. */
  earlySetup?: { setup: Record<string, unknown>; done: Promise<void> };
  /** The driver's snapshot capability, for snapshotRunning. */
  snapshotter?: SnapshotCapability;
  /** What the guest runs from: a saved running state resumes only with these same files (packed snapshots). */
  guestFiles?: GuestFiles;
  /** Trims the console log while the VM runs; stopped before its descriptor is closed. */
  private readonly consoleBound: { stop(): void };

  constructor(
    readonly agent: AgentClient,
    readonly handle: VmHandle,
    readonly timings: BootTimings,
    /** What the agent reported about itself when ready (guest uptime, agent start time...). */
    readonly agentInfo: AgentInfo,
    private readonly consoleFd: number,
    /** True when the VM came from a boot snapshot rather than a boot. */
    readonly restored = false,
  ) {
    this.consoleBound = boundConsoleLog(consoleFd);
  }

  exec(options: ExecOptions): Promise<ExecSession> {
    return this.agent.exec(options);
  }

  /** The last lines the guest printed on its console (kernel messages, init errors). */
  consoleTail(lines = 20): string[] {
    // The log file itself is already unlinked; our descriptor still reads it.
    return readLogTail(this.consoleFd, lines);
  }

  /**
   * Powers the guest off through the agent (see flushOnStop) and waits for the VM to end, ending
   * it harder after `graceMs`. Idempotent; never rejects.
   */
  dispose(graceMs = 5_000): Promise<VmExit> {
    this.disposing ??= (async () => {
      let exit: VmExit;
      if (this.flushOnStop) {
        try {
          await withTimeout(this.agent.shutdown(), graceMs, 'the guest shutdown');
        } catch {
          // An agent that does not answer is ended by the driver below.
        }
        exit = await this.handle.stop({ timeoutMs: graceMs });
      } else {
        exit = await this.handle.kill();
      }
      this.agent.close();
      this.consoleBound.stop();
      fs.closeSync(this.consoleFd);
      for (const cleanup of this.cleanups.splice(0)) await cleanup().catch(() => undefined);
      return exit;
    })();
    return this.disposing;
  }

  /**
   * Saves the running VM into `stateDir` (empty, private) for StartVmOptions.fromSnapshot; the
   * guest is paused only while its state is taken and `whilePaused` copies its writable disks
   * (returning the copies by disk id). Throws SnapshotError, the VM running again.
   */
  async snapshotRunning(
    stateDir: string,
    whilePaused: () => Promise<{ overlayDisk: string; storageDisk: string }>,
  ): Promise<void> {
    const snapshotRunning = this.snapshotter?.snapshotRunning?.bind(this.snapshotter);
    if (!snapshotRunning)
      throw new SnapshotError('this driver cannot snapshot a running VM', {
        remedy: 'stop the machine and snapshot it while stopped',
      });
    await snapshotRunning(this.handle, stateDir, async () => {
      const copies = await whilePaused();
      return { [OVERLAY_DISK_ID]: copies.overlayDisk, [STORAGE_DISK_ID]: copies.storageDisk };
    });
  }

  /** Runs `fn` after the VM has ended, when it is disposed or killed. */
  addCleanup(fn: () => Promise<void>): void {
    this.cleanups.push(fn);
  }

  /** Ends the VM at once. */
  async kill(): Promise<VmExit> {
    const exit = await this.handle.kill();
    return this.dispose(0).then(() => exit);
  }
}
