/**
 * The simulated clock: time moves only when the harness moves it, and timers (the flush-queue
 * timer) fire when it passes their expiry, in expiry order. Same inputs, same firing points.
 */

export interface Timer {
  expiresNs: number;
  fire: () => void;
}

export class SimClock {
  private now = 0;
  private readonly timers: Timer[] = [];

  get nowNs(): number {
    return this.now;
  }

  /** Arm a timer `delayNs` from now; returns it so the owner can tell whether it is pending. */
  arm(delayNs: number, fire: () => void): Timer {
    const t: Timer = { expiresNs: this.now + delayNs, fire };
    this.timers.push(t);
    return t;
  }

  /** Move time forward, firing every timer that expires on the way (at its own instant). */
  advance(ns: number): void {
    const target = this.now + ns;
    for (;;) {
      let next: Timer | undefined;
      for (const t of this.timers) if (t.expiresNs <= target && (next === undefined || t.expiresNs < next.expiresNs)) next = t;
      if (next === undefined) break;
      this.timers.splice(this.timers.indexOf(next), 1);
      this.now = Math.max(this.now, next.expiresNs);
      next.fire();
    }
    this.now = target;
  }

  get pendingTimers(): number {
    return this.timers.length;
  }
}

/** "secs.usecs" as ftrace prints the timestamp. */
export function formatTimestamp(ns: number): string {
  const us = Math.floor(ns / 1000);
  return `${Math.floor(us / 1e6)}.${String(us % 1e6).padStart(6, '0')}`;
}
