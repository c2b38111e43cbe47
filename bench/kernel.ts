/** iova.c figures: the rcache fast path, and slow-path cost against the number of live ranges. */
import { IovaDomain } from '../kernel/iova.js';
import { measure } from './timing.js';

export function benchIova(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const release of ['5.10', '6.1'] as const) {
    const d = new IovaDomain(release, 4096, 1, 1);
    // warm the class-0 magazine, then every pair is a cache hit and a cache insert
    for (let i = 0; i < 64; i++) d.freeIovaFast(0, d.allocIovaFast(0, 1, 0xfffff, true), 1);
    const r = measure(() => {
      for (let i = 0; i < 10000; i++) d.freeIovaFast(0, d.allocIovaFast(0, 1, 0xfffff, true), 1);
      return 10000;
    });
    out[`iova_fast_pairs_per_sec_warm_rcache_${release.replace('.', '_')}`] = r.opsPerSec;
  }
  const slow: Record<number, number> = {};
  for (const live of [1_000, 100_000, 1_000_000]) {
    const d = new IovaDomain('6.1', 4096, 1, 1);
    // live single-page ranges packed top-down below 2^40 pfns
    for (let i = 0; i < live; i++) d.allocIova(1, 2 ** 40 - 1, true);
    const r = measure(() => {
      for (let i = 0; i < 2000; i++) {
        const n = d.allocIova(1, 2 ** 40 - 1, true)!;
        d.freeIova(n.pfnLo);
      }
      return 2000;
    });
    slow[live] = r.opsPerSec;
    out[`iova_slow_path_allocs_per_sec_${live}_live`] = r.opsPerSec;
  }
  // logarithmic growth: 1000x more live ranges should cost about log(1e6)/log(1e3) = 2x, not 1000x
  out['iova_slow_path_cost_ratio_1M_over_1k'] = Math.round((slow[1_000]! / slow[1_000_000]!) * 100) / 100;
  return out;
}
