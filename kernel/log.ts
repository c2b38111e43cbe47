/**
 * The kernel log the models print to, with printk's once and ratelimit behaviour on the
 * simulated clock. Lines carry their pr_fmt/dev prefix exactly as dmesg shows them.
 */
import type { SimClock } from './clock.js';

/** DEFAULT_RATELIMIT_INTERVAL (5 s) and DEFAULT_RATELIMIT_BURST (10) */
export const DEFAULT_RATELIMIT_INTERVAL_NS = 5_000_000_000;
export const DEFAULT_RATELIMIT_BURST = 10;

export interface LogLine {
  step: number;
  text: string;
}

/** struct ratelimit_state, as ___ratelimit() uses it. */
export class RateLimit {
  private begin = -1;
  private printed = 0;
  private missed = 0;

  constructor(
    readonly name: string,
    readonly intervalNs = DEFAULT_RATELIMIT_INTERVAL_NS,
    readonly burst = DEFAULT_RATELIMIT_BURST,
  ) {}

  /** true when the message may be printed; reports suppressed callbacks on a new interval */
  allow(now: number, log: KernelLog): boolean {
    if (this.begin < 0) this.begin = now;
    if (now > this.begin + this.intervalNs) {
      if (this.missed > 0) log.print(`${this.name}: ${this.missed} callbacks suppressed`);
      this.begin = now;
      this.printed = 0;
      this.missed = 0;
    }
    if (this.burst > this.printed) {
      this.printed++;
      return true;
    }
    this.missed++;
    return false;
  }
}

export class KernelLog {
  readonly lines: LogLine[] = [];
  private readonly onceKeys = new Set<string>();
  /** the scenario step the next lines belong to (-1: set-up) */
  step = -1;

  constructor(readonly clock: SimClock) {}

  print(text: string): void {
    this.lines.push({ step: this.step, text });
  }

  /** printk_once / dev_*_once: one flag per call site (the macro's static bool), whatever the device. */
  once(key: string, text: string): void {
    if (this.onceKeys.has(key)) return;
    this.onceKeys.add(key);
    this.print(text);
  }

  ratelimited(rs: RateLimit, text: string): void {
    if (rs.allow(this.clock.nowNs, this)) this.print(text);
  }

  /** lines printed since index `from` */
  since(from: number): string[] {
    return this.lines.slice(from).map((l) => l.text);
  }
}
