/**
 * The reachable sets are kept incrementally (reach-tracker.ts) and must always equal the
 * reference recomputed from scratch (observe.ts computeReachable): after every step of random
 * gate workloads on every platform of the matrix -- superpages, caching mode, lazy flush queues,
 * bounce slots, exhaustion -- the --paranoid comparison holds; and a tracker with a seeded bug
 * (it ignores IOTLB fills and drops) is caught by that comparison.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { workloadArb } from '../../harness/workload/generators.js';
import { PLATFORM_MATRIX, genOptions, scenarioOf, type SearchConfig } from '../../harness/search/property.js';
import { runScenario } from '../../harness/run/runner.js';
import type { Scenario } from '../../harness/workload/scenario.js';

function workloads(name: string, n: number, seed: number): Scenario[] {
  const p = PLATFORM_MATRIX.find((x) => x.name === name)!;
  const cfg: SearchConfig = { platform: p, consumers: ['correct', 'i915-fixed'], maxSteps: 30, checkTrace: true, faults: {} };
  return fc.sample(workloadArb(genOptions(cfg)), { seed, numRuns: n }).map((w) => scenarioOf(cfg, w));
}

describe('incremental reachable sets equal the reference after every step', () => {
  const seen = { superpages: 0, bounces: 0, reads: 0, fqTimer: 0, cmFlushes: 0 };

  it.each(PLATFORM_MATRIX.map((p) => p.name))('%s: 25 random gate workloads under --paranoid', (name) => {
    for (const s of workloads(name, 25, 4242)) {
      const doc = runScenario(s, { paranoid: true });
      const g = doc.stats['dma-iommu'];
      seen.superpages += g.superpageLeaves + doc.stats['legacy-intel'].superpageLeaves;
      seen.bounces += g.swiotlbMaps;
      seen.fqTimer += g.fqTimerFlushes;
      seen.cmFlushes += g.cmMapFlushes;
      seen.reads += doc.paths['dma-iommu'].steps.filter((r) => r.ok && r.data !== undefined).length;
    }
  });

  it('those workloads went through what the tracker follows: superpages, bounce slots, lazy flushes, caching-mode flushes, device reads', () => {
    for (const [what, n] of Object.entries(seen)) expect(n, what).toBeGreaterThan(0);
  });

  it('a tracker that ignores IOTLB fills and drops is caught by --paranoid (lazy-2cpu: stale IOTLB entries)', () => {
    let caught = 0;
    for (const s of workloads('lazy-2cpu', 25, 4242)) {
      try {
        runScenario(s, { paranoid: true, trackerBug: 'ignoreIotlbEvents' });
      } catch (e) {
        expect(String(e)).toMatch(/--paranoid: after step \d+, the reachable set of .* kept incrementally differs from the one computed from scratch/);
        caught++;
      }
    }
    expect(caught).toBeGreaterThan(0);
  });

  it('the same tracker without the bug passes the same workloads', () => {
    for (const s of workloads('lazy-2cpu', 25, 4242)) expect(() => runScenario(s, { paranoid: true })).not.toThrow();
  });
});
