// Elastic memory, the guest's half: the kernel reports free pages to the host (virtio-balloon free
// page reporting), but page cache is not free, so a guest that read or wrote a lot keeps holding
// that memory while idle. Once no request has been running for a while, the agent drops the
// clean page cache; what becomes free is then reported and returned to the host.

/** How long the agent must have been idle (no request in flight) before it trims. */
export const IDLE_TRIM_MS = 5_000;

export interface IdleTrimmer {
  /** A request started: not idle until the matching `end`. */
  begin(): void;
  end(): void;
  /** Stops the timer (tests; a VM just powers off). */
  close(): void;
}

/**
 * Calls `trim` once each time the agent has been idle for `idleMs` since its last request ended.
 * A request that starts meanwhile cancels it; an idle agent does not trim again and again.
 */
export function createIdleTrimmer(trim: () => void, idleMs = IDLE_TRIM_MS): IdleTrimmer {
  let inFlight = 0;
  let timer: NodeJS.Timeout | undefined;
  const cancel = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
  };
  return {
    begin() {
      inFlight++;
      cancel();
    },
    end() {
      inFlight = Math.max(0, inFlight - 1);
      if (inFlight > 0) return;
      cancel();
      timer = setTimeout(() => {
        timer = undefined;
        try {
          trim();
        } catch {
          // Trimming is an optimisation: a failure (no /proc in a test root) must not hurt a request.
        }
      }, idleMs);
      // Never what keeps the agent alive.
      timer.unref();
    },
    close: cancel,
  };
}
