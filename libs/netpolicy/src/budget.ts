// A byte budget shared by all connections of a gateway: what the guest can make the gateway hold
// in one direction, summed over every connection, has a hard cap however many connections it opens.

/**
 * What one buffered piece costs beyond its bytes (Buffer object, backing store, queue entry,
 * write request), charged with it, so a flood of tiny pieces is bounded too, not just bytes.
 */
export const PIECE_OVERHEAD = 512;

export class ByteBudget {
  private used = 0;
  private readonly waiters = new Set<() => void>();

  constructor(readonly limit: number) {}

  get inUse(): number {
    return this.used;
  }

  get free(): number {
    return Math.max(0, this.limit - this.used);
  }

  get exhausted(): boolean {
    return this.used >= this.limit;
  }

  /** Charges n bytes if they fit. */
  tryTake(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }

  /** Charges n bytes that exist already (read before the cap could stop them). */
  take(n: number): void {
    this.used += n;
  }

  release(n: number): void {
    this.used -= n;
    if (this.waiters.size > 0 && this.used <= this.limit / 2) {
      const wake = [...this.waiters];
      this.waiters.clear();
      for (const w of wake) w();
    }
  }

  /** Calls wake once, when at least half of the budget is free again. */
  wait(wake: () => void): void {
    this.waiters.add(wake);
  }

  /** Forgets a waiter (its connection is gone). */
  unwait(wake: () => void): void {
    this.waiters.delete(wake);
  }
}
