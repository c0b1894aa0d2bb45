// Ending a hypervisor as gracefully as it allows (driver-api StopOptions): let it end by itself
// for `timeoutMs`, then its own clean quit (disks flushed), then SIGTERM, then SIGKILL.
import { delay } from '@smolvm/common';

export interface StopSteps {
  /** Settles once the process has exited. */
  exited: Promise<unknown>;
  /** The hypervisor's clean quit (QEMU: QMP `quit`); absent: SIGTERM is the first step. */
  quit?: (timeoutMs: number) => Promise<void>;
  /** Sends a signal to the hypervisor process. */
  signal(signal: 'SIGTERM' | 'SIGKILL'): void;
}

export interface StopTimings {
  /** How long to let it end by itself first. Default 0. */
  timeoutMs?: number;
  /** After the quit, before SIGTERM. Default 5 s: flushing disks takes a while on a busy host. */
  quitGraceMs?: number;
  /** After SIGTERM, before SIGKILL. Default 2 s. */
  termGraceMs?: number;
}

/** Resolves once the process exited, or right after SIGKILL was sent. Never rejects. */
export async function escalateStop(steps: StopSteps, timings: StopTimings = {}): Promise<void> {
  const quitGraceMs = timings.quitGraceMs ?? 5_000;
  const termGraceMs = timings.termGraceMs ?? 2_000;
  const within = (ms: number) =>
    Promise.race([
      steps.exited.then(
        () => true,
        () => true,
      ),
      delay(ms, { unref: true }).then(() => false),
    ]);
  if ((timings.timeoutMs ?? 0) > 0 && (await within(timings.timeoutMs ?? 0))) return;
  if (steps.quit) {
    await steps.quit(quitGraceMs).catch(() => undefined);
    if (await within(quitGraceMs)) return;
  }
  steps.signal('SIGTERM');
  if (await within(termGraceMs)) return;
  steps.signal('SIGKILL');
}
