/** Measurement helpers for `npm run bench`: operations per second over a fixed wall-clock window. */

export interface Rate {
  opsPerSec: number;
  ops: number;
  seconds: number;
}

/** Run fn(batch) repeatedly for about `seconds`; fn returns how many operations it did. */
export function measure(fn: () => number, seconds = 0.5): Rate {
  fn(); // warm-up
  let ops = 0;
  const start = process.hrtime.bigint();
  const budget = BigInt(Math.round(seconds * 1e9));
  let elapsed = 0n;
  while (elapsed < budget) {
    ops += fn();
    elapsed = process.hrtime.bigint() - start;
  }
  const s = Number(elapsed) / 1e9;
  return { opsPerSec: Math.round(ops / s), ops, seconds: Math.round(s * 1000) / 1000 };
}
