/**
 * The property run's figures: generated steps checked per second end to end, and how long the
 * search takes to find and shrink each seeded bug and the i915 divergence (median of 3 seeds).
 */
import type { SeededBugs } from '../harness/run/paths.js';
import { CHUNK_RUNS, PLATFORM_MATRIX, chunkSeed, runChunk, type SearchConfig } from '../harness/search/property.js';
import type { Consumer } from '../harness/workload/scenario.js';
import { search } from '../harness/search/search.js';
import { SEEDED_BUGS } from '../harness/search/token.js';

function cfgFor(platform: string, consumers: Consumer[], faults: SeededBugs): SearchConfig {
  return { platform: PLATFORM_MATRIX.find((p) => p.name === platform)!, consumers, maxSteps: 30, checkTrace: true, faults };
}

/** ms until the first failure is found and shrunk, and its size; capped at maxChunks chunks (200 runs, as a gate's platform budget doubled) */
function timeToFind(cfg: SearchConfig, seed: number, maxChunks = 8): { ms: number; steps: number } | undefined {
  const t0 = process.hrtime.bigint();
  for (let j = 0; j < maxChunks; j++) {
    const r = runChunk(cfg, chunkSeed(seed, j), CHUNK_RUNS);
    if (r.failure !== undefined) return { ms: Number(process.hrtime.bigint() - t0) / 1e6, steps: r.failure.scenario.steps.length };
  }
  return undefined;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function benchSearch(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  // end to end: generation, both paths, the checker, coverage
  const cfg = cfgFor('qemu-strict', ['correct', 'i915-fixed'], {});
  const t0 = process.hrtime.bigint();
  let steps = 0;
  for (let j = 0; j < 4; j++) steps += runChunk(cfg, chunkSeed(99, j)).tally.steps;
  out['generated_steps_per_sec_checked_end_to_end'] = Math.round(steps / (Number(process.hrtime.bigint() - t0) / 1e9));
  // i915 and every seeded bug, each on a platform where it matters (the exhaustion bugs on
  // exhaust-1cpu); find_and_shrink covers finding and shrinking, from the first chunk on
  const targets: Array<[string, string, Consumer[], SeededBugs]> = [['i915', 'qemu-strict', ['correct', 'i915'], {}]];
  for (const bug of SEEDED_BUGS) targets.push([bug, BUG_PLATFORM[bug] ?? 'qemu-strict', ['correct'], { [bug]: true }]);
  for (const [name, platform, consumers, faults] of targets) {
    const found = [1, 2, 3].map((s) => timeToFind(cfgFor(platform, consumers, faults), s)).filter((x) => x !== undefined);
    out[`found_of_3_seeds_${name}`] = found.length;
    if (found.length === 0) continue;
    out[`find_and_shrink_ms_median_${name}`] = Math.round(median(found.map((f) => f.ms)));
    out[`shrunk_steps_median_${name}`] = median(found.map((f) => f.steps));
  }
  // the default gate as CI runs it: every platform, 100 runs each, consumers correct,i915-fixed
  const g0 = process.hrtime.bigint();
  const r = await search({
    seed: 1,
    runsPerPlatform: 100,
    platforms: PLATFORM_MATRIX,
    platformIds: PLATFORM_MATRIX.map((_, i) => i),
    consumers: ['correct', 'i915-fixed'],
    maxSteps: 30,
    checkTrace: true,
    faults: {},
    stopAtFirstFailure: true,
  });
  out['default_gate_seconds'] = Math.round(Number(process.hrtime.bigint() - g0) / 1e8) / 10;
  out['default_gate_failures'] = r.failures.length;
  return out;
}

/** where each seeded bug can show: the allocator bugs need the exhaustion workload, lazyUntrusted a flush queue, noIotlbSyncMap caching mode */
const BUG_PLATFORM: Partial<Record<string, string>> = {
  noIotlbSyncMap: 'caching-mode',
  lazyUntrusted: 'lazy-2cpu',
  retryFromCachedNode: 'exhaust-1cpu',
  roundAllToPowerOfTwo: 'exhaust-1cpu',
  noDepotFlushOnFailure: 'exhaust-1cpu',
};
