// A running QEMU: the VmHandle of every QEMU-based driver.
import fs from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import type { StopOptions, VmExit, VmExitReason, VmHandle, VmSpec } from '@smolvm/driver-api';
import type { MachineStateArgs } from './argv';
import type { QemuTarget } from './target';
import type { QmpClient, QmpEvent, QmpVersion } from './qmp';
import { delay } from '@smolvm/common';
import { escalateStop, type OutputTail } from '@smolvm/driver-kit';
import type { QemuRestoreRecipe } from './prestart';

export interface QemuVmParts {
  child: ChildProcess;
  qmp: QmpClient;
  stderr: OutputTail;
  /** Files of ours to delete once QEMU has exited. */
  ownFiles: string[];
  release(): void;
  /** A restored VM: how it was started, for starting the next one early (prestart.ts). */
  recipe?: QemuRestoreRecipe;
  /** What it was launched with (a running snapshot starts a twin of it: running-snapshot.ts). */
  launched?: { spec: VmSpec; target: QemuTarget; state?: MachineStateArgs };
}

export class QemuVm implements VmHandle {
  readonly pid: number;
  private readonly exit: Promise<VmExit>;
  private exited = false;
  private shutdownReason?: string;
  private killRequested = false;
  private stopRequested = false;
  private stopping?: Promise<VmExit>;
  private deadState?: string;

  constructor(private readonly parts: QemuVmParts) {
    if (parts.child.pid === undefined) throw new Error('QemuVm needs a spawned process');
    this.pid = parts.child.pid;
    parts.qmp.onEvent((event: QmpEvent) => {
      if (event.event === 'SHUTDOWN' && typeof event.data?.reason === 'string') this.shutdownReason = event.data.reason;
      if (event.event === 'STOP') void this.endIfDead();
    });
    this.exit = new Promise((resolve) => {
      const onExit = async (code: number | null, signal: NodeJS.Signals | null): Promise<void> => {
        parts.release();
        // Events QEMU wrote just before dying (SHUTDOWN and its reason) arrive before the
        // socket's EOF, not necessarily before the exit notification: read them all first.
        await Promise.race([parts.qmp.closed, delay(1_000, { unref: true })]);
        parts.qmp.close();
        for (const file of parts.ownFiles) fs.rmSync(file, { force: true });
        this.exited = true;
        resolve(this.classify(code, signal));
      };
      // The child may already have exited while start-up was being confirmed.
      if (parts.child.exitCode !== null || parts.child.signalCode !== null)
        void onExit(parts.child.exitCode, parts.child.signalCode);
      else parts.child.once('exit', (code, signal) => void onExit(code, signal));
    });
  }

  wait(): Promise<VmExit> {
    return this.exit;
  }

  stop(options: StopOptions = {}): Promise<VmExit> {
    if (this.exited) return this.exit;
    this.stopping ??= this.escalate(options.timeoutMs ?? 0);
    return this.stopping;
  }

  kill(): Promise<VmExit> {
    if (!this.exited) {
      this.killRequested = true;
      this.parts.child.kill('SIGKILL');
    }
    return this.exit;
  }

  qmp(command: string, args?: Record<string, unknown>): Promise<unknown> {
    return this.parts.qmp.execute(command, args);
  }

  /** Subscribes to QMP events of this VM. */
  onEvent(listener: (event: QmpEvent) => void): () => void {
    return this.parts.qmp.onEvent(listener);
  }

  /** What it was launched with, when launchQemu started it. */
  get launched(): QemuVmParts['launched'] {
    return this.parts.launched;
  }

  /** A restored VM's recipe (see prestart.ts); undefined for booted ones. */
  get restoreRecipe(): QemuRestoreRecipe | undefined {
    return this.parts.recipe;
  }

  /** What QEMU said it is in its QMP greeting. */
  qemuVersion(): QmpVersion | undefined {
    return this.parts.qmp.version;
  }

  /** The last lines QEMU wrote on stderr (warnings, errors). */
  hypervisorOutput(): string[] {
    return this.parts.stderr.get();
  }

  /**
   * QEMU pauses a VM whose accelerator failed (KVM "emulation failure": run state
   * internal-error) and waits forever. Nothing can resume it: end it, as a crash.
   */
  private async endIfDead(): Promise<void> {
    const status = (await this.parts.qmp.execute('query-status').catch(() => undefined)) as
      { status?: string } | undefined;
    if (status?.status !== 'internal-error') return;
    this.deadState = status.status;
    await this.parts.qmp.execute('quit').catch(() => undefined);
  }

  private async escalate(timeoutMs: number): Promise<VmExit> {
    await escalateStop(
      {
        exited: this.exit,
        // quit: QEMU flushes its disks and exits cleanly. Past timeoutMs, the VM is being stopped.
        quit: async (graceMs) => {
          this.stopRequested = true;
          await this.parts.qmp.execute('quit', undefined, { timeoutMs: graceMs });
        },
        signal: (signal) => {
          this.stopRequested = true;
          this.parts.child.kill(signal);
        },
      },
      { timeoutMs },
    );
    return this.exit;
  }

  private classify(code: number | null, signal: NodeJS.Signals | null): VmExit {
    if (this.deadState)
      return { reason: 'crashed', code, signal, detail: this.deadState, hypervisorOutput: this.parts.stderr.get() };
    const detail = this.shutdownReason;
    let reason: VmExitReason;
    if (detail?.startsWith('guest-')) reason = 'guest';
    else if (signal === 'SIGKILL' || this.killRequested) reason = 'killed';
    else if (detail !== undefined || this.stopRequested) reason = 'stopped';
    else if (code === 0) reason = 'guest';
    else return { reason: 'crashed', code, signal, hypervisorOutput: this.parts.stderr.get() };
    return detail === undefined ? { reason, code, signal } : { reason, code, signal, detail };
  }
}
