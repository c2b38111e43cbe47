/**
 * The differential property: a generated workload, normalised into a scenario on one platform,
 * runs on both paths; it holds when no divergence outside the allowlist appears. Runs are grouped
 * in chunks, each with its own seed derived from the base seed and the chunk number, so a budget
 * can be split over shards (chunk c belongs to shard c mod n) and still cover the same runs.
 */
import fc from 'fast-check';
import { must } from '../../kernel/assert.js';
import { bugList, type SeededBugs } from '../run/paths.js';
import { padPages } from '../check/allowlist.js';
import { needsBounce } from '../run/devices.js';
import type { Divergence } from '../check/checker.js';
import { toScenario, workloadArb, type GenOptions, type Workload } from '../workload/generators.js';
import { failing, runScenario, type ResultDoc } from '../run/runner.js';
import type { Consumer, Platform, Scenario } from '../workload/scenario.js';

/** runs per chunk: each chunk is one fast-check run with its own seed */
export const CHUNK_RUNS = 25;

export interface NamedPlatform {
  name: string;
  platform: Platform;
  /** leave only 2 MiB of IOVA space below 4 GiB free (the first MiB and the last): 32-bit exhaustion and fallback */
  tight32?: boolean;
  /**
   * drive a 4 MiB IOVA window around 1 GiB (everything else reserved) to exhaustion and back with
   * the exhaustion workload: the two releases' retry, rounding and flush-on-failure rules
   */
  exhaust?: boolean;
}

const ALL_SP: Platform['superpages'] = ['2M', '1G'];
const QEMU_STRICT: Platform = { agaw: 39, cachingMode: false, zlr: false, superpages: ALL_SP, strict: true, forcedac: false, cpus: 1 };

/** The default platform matrix of the gate. */
export const PLATFORM_MATRIX: readonly NamedPlatform[] = [
  { name: 'qemu-strict', platform: QEMU_STRICT },
  { name: 'lazy-2cpu', platform: { agaw: 48, cachingMode: false, zlr: false, superpages: ALL_SP, strict: false, forcedac: false, cpus: 2 } },
  { name: 'caching-mode', platform: { agaw: 39, cachingMode: true, zlr: false, superpages: ['2M'], strict: false, forcedac: false, cpus: 1 } },
  { name: 'aw57-forcedac', platform: { agaw: 57, cachingMode: false, zlr: true, superpages: [], strict: true, forcedac: true, cpus: 2 } },
  { name: 'tight32', platform: { agaw: 48, cachingMode: false, zlr: false, superpages: ALL_SP, strict: true, forcedac: false, cpus: 1 }, tight32: true },
  { name: 'exhaust-1cpu', platform: QEMU_STRICT, exhaust: true },
  { name: 'exhaust-2cpu', platform: { ...QEMU_STRICT, cpus: 2 }, exhaust: true },
];

/**
 * The IOVA window the exhaustion platforms leave free: 1024 pages across 1 GiB, so a 30-bit mask
 * reaches only its lower half. An allocation under a 30-bit mask leaves the 32-bit cached node
 * low, and the space above it is found only by 6.1's retry from the top (4e89dce72521).
 */
export const EXHAUST_WINDOW = { start: 0x3fe0_0000n, end: 0x401f_ffffn };

export const COVERAGE_BRANCHES = [
  'bounce',
  'superpage',
  'rcache-reuse',
  '32bit-fallback',
  'merge',
  'no-merge',
  'seg-pad',
  'cm-flush',
  'fq-full',
  'fq-timer',
  'fault',
  'rcache-flush',
  'iova-retry',
  'depot-flush',
  'legacy-only-failure',
  'rounded-tail',
] as const;
export type Branch = (typeof COVERAGE_BRANCHES)[number];

/**
 * The lifecycle cells: direction x trusted/untrusted x single/sg x sync kind. A cell is hit by a
 * sync of that kind on a live mapping of that shape and direction, by a device of that kind --
 * for an untrusted device, a mapping that was bounced (so the sync has something to copy).
 */
export const LIFECYCLE_CELLS: readonly string[] = (['to_device', 'from_device', 'bidirectional'] as const).flatMap((dir) =>
  ['trusted', 'untrusted'].flatMap((t) => ['single', 'sg'].flatMap((shape) => ['for_cpu', 'for_device'].map((k) => `${dir}/${t}/${shape}/${k}`))),
);

/** Every coverage column: the branches, then the lifecycle cells. */
export const COVERAGE_KEYS: readonly string[] = [...COVERAGE_BRANCHES, ...LIFECYCLE_CELLS];

/**
 * Whether a branch (or lifecycle cell) can occur on a platform with its workload: where it
 * cannot, the table prints n/a; where it can and no run reached it, the gate cannot vouch for it.
 */
export function applies(p: NamedPlatform, key: string): boolean {
  const cfg = p.platform;
  const lazy = !cfg.strict && !cfg.cachingMode;
  if (p.exhaust === true) return ['bounce', 'rcache-reuse', '32bit-fallback', 'rcache-flush', 'iova-retry', 'depot-flush', 'legacy-only-failure', 'rounded-tail'].includes(key);
  switch (key) {
    case 'superpage':
      return cfg.superpages.length > 0;
    case '32bit-fallback':
      return p.tight32 === true;
    case 'cm-flush':
      return cfg.cachingMode;
    case 'fq-full':
    case 'fq-timer':
      return lazy;
    case 'rcache-flush':
    case 'iova-retry':
    case 'depot-flush':
    case 'legacy-only-failure':
    case 'rounded-tail':
      return false;
    default:
      return true;
  }
}

export interface SearchConfig {
  platform: NamedPlatform;
  consumers: Consumer[];
  maxSteps: number;
  checkTrace: boolean;
  /** seeded bugs (tests of the harness) */
  faults: SeededBugs;
  /** check the incremental reachable sets against the reference after every step */
  paranoid?: boolean;
}

export interface Tally {
  runs: number;
  steps: number;
  /** divergences of the kinds this search checks (trace ones not counted under --no-trace) */
  divergences: number;
  /** of those, how many each allowlist entry (or combination, "D3+D4") recognised */
  allowlisted: Record<string, number>;
  /** runs that hit each branch and lifecycle cell (COVERAGE_KEYS) */
  coverage: Record<string, number>;
}

export function emptyTally(): Tally {
  const coverage = Object.fromEntries(COVERAGE_KEYS.map((b) => [b, 0]));
  return { runs: 0, steps: 0, divergences: 0, allowlisted: {}, coverage };
}

export function addTally(a: Tally, b: Tally): void {
  a.runs += b.runs;
  a.steps += b.steps;
  a.divergences += b.divergences;
  for (const [id, n] of Object.entries(b.allowlisted)) a.allowlisted[id] = (a.allowlisted[id] ?? 0) + n;
  for (const k of COVERAGE_KEYS) a.coverage[k] = (a.coverage[k] ?? 0) + (b.coverage[k] ?? 0);
}

/** The scenario a workload stands for on a platform. */
export function scenarioOf(cfg: SearchConfig, w: Workload): Scenario {
  const s = toScenario(cfg.platform.platform, w, cfg.consumers);
  const bugs = bugList(cfg.faults);
  if (bugs.length > 0) s.seededBugs = bugs;
  if (cfg.platform.tight32) s.reserved.push({ start: 0x10_0000n, end: 0xffef_ffffn });
  if (cfg.platform.exhaust) {
    // everything but the window: below it, and from 4 GiB to the top of the width
    s.reserved.push({ start: 0x1000n, end: EXHAUST_WINDOW.start - 1n }, { start: EXHAUST_WINDOW.end + 1n, end: (1n << BigInt(cfg.platform.platform.agaw)) - 1n });
  }
  return s;
}

/** The generator options of a search: the exhaustion platforms get their own workload. */
export function genOptions(cfg: SearchConfig): GenOptions {
  return { consumers: cfg.consumers, maxSteps: cfg.maxSteps, maxDevices: 2, mode: cfg.platform.exhaust === true ? 'exhaust' : 'mixed' };
}

/** Which branches and lifecycle cells one run went through. */
function branchesHit(s: Scenario, doc: ResultDoc): Set<string> {
  const hit = new Set<string>();
  const both = [doc.stats['legacy-intel'], doc.stats['dma-iommu']];
  const gs = doc.stats['dma-iommu'];
  if (both.some((x) => x.swiotlbMaps > 0)) hit.add('bounce');
  if (both.some((x) => x.superpageLeaves > 0)) hit.add('superpage');
  if (both.some((x) => x.rcacheHits > 0)) hit.add('rcache-reuse');
  if (both.some((x) => x.iovaSearchFailures > 0)) hit.add('32bit-fallback');
  if (both.some((x) => x.cmMapFlushes > 0)) hit.add('cm-flush');
  if (both.some((x) => x.fqFullFlushes > 0)) hit.add('fq-full');
  if (both.some((x) => x.fqTimerFlushes > 0)) hit.add('fq-timer');
  if (both.some((x) => x.rcacheFlushRetries > 0)) hit.add('rcache-flush');
  if (gs.iovaRetrySuccesses > 0) hit.add('iova-retry');
  if (gs.depotFlushes > 0) hit.add('depot-flush');
  if (doc.divergences.some((d) => d.kind === 'outcome' && d.allowlisted === 'D4')) hit.add('legacy-only-failure');
  if (doc.roundedTailUses > 0) hit.add('rounded-tail');
  const g = doc.paths['dma-iommu'].steps;
  const l = doc.paths['legacy-intel'].steps;
  const bounds = new Map(s.devices.map((d) => [d.id, d.segBoundaryMask]));
  const devs = new Map(s.devices.map((d) => [d.id, d]));
  const maps = new Map<string, { dir: string; untrusted: boolean; shape: string; bounced: boolean }>();
  s.steps.forEach((st, i) => {
    const gi = must(g[i], 'the generic result of each step');
    const li = must(l[i], 'the legacy result of each step');
    if (st.op === 'set_seg_boundary') bounds.set(st.dev, st.mask);
    if (st.op === 'map_sg' && gi.ok && st.sg.length > 1) hit.add(must(gi.count, 'the segment count of a map_sg that succeeded') < st.sg.length ? 'merge' : 'no-merge');
    if (st.op === 'map_sg' && gi.ok && padPages(st.sg, must(bounds.get(st.dev), 'the boundary of a device of the scenario')).size > 0) hit.add('seg-pad');
    if (gi.fault !== undefined) hit.add('fault');
    if ((st.op === 'map_page' || st.op === 'map_sg') && gi.ok && li.ok) {
      const d = must(devs.get(st.dev), 'a device of the scenario');
      const bufs = st.op === 'map_page' ? [{ phys: st.phys, length: st.size }] : st.sg;
      const bounced = bufs.some((b) => needsBounce(b.phys, b.length));
      maps.set(st.as, { dir: st.dir, untrusted: d.pci && d.untrusted, shape: st.op === 'map_page' ? 'single' : 'sg', bounced });
    }
    if ((st.op === 'sync_for_cpu' || st.op === 'sync_for_device') && gi.ok && li.ok) {
      const m = maps.get(st.map);
      if (m !== undefined && (!m.untrusted || m.bounced)) hit.add(`${m.dir}/${m.untrusted ? 'untrusted' : 'trusted'}/${m.shape}/${st.op === 'sync_for_cpu' ? 'for_cpu' : 'for_device'}`);
    }
  });
  return hit;
}

export interface Failure {
  scenario: Scenario;
  divergences: Divergence[];
  /** fast-check's replay coordinates */
  seed: number;
  path: string;
}

/** Evaluate one workload: the tally of the run and the failing divergences. */
export function evaluate(cfg: SearchConfig, w: Workload, tally: Tally): Divergence[] {
  const s = scenarioOf(cfg, w);
  const doc = runScenario(s, { paranoid: cfg.paranoid === true });
  tally.runs++;
  tally.steps += s.steps.length;
  for (const d of doc.divergences) {
    if (!cfg.checkTrace && d.kind === 'trace') continue;
    tally.divergences++;
    if (d.allowlisted !== undefined) tally.allowlisted[d.allowlisted] = (tally.allowlisted[d.allowlisted] ?? 0) + 1;
  }
  for (const b of branchesHit(s, doc)) tally.coverage[b] = (tally.coverage[b] ?? 0) + 1;
  return failing(doc, cfg.checkTrace);
}

export function propertyOf(cfg: SearchConfig, tally: Tally): fc.IPropertyWithHooks<[Workload]> {
  return fc.property(workloadArb(genOptions(cfg)), (w) => evaluate(cfg, w, tally).length === 0);
}

/** seed of chunk c: a fixed mix of the base seed and the chunk number (32-bit) */
export function chunkSeed(base: number, c: number): number {
  let x = (base ^ Math.imul(c + 1, 0x9e3779b1)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
  return (x ^ (x >>> 16)) | 0;
}

/** What one chunk found: the tally of its generated runs and, if one failed, the shrunk failure. */
export interface ChunkResult {
  tally: Tally;
  failure?: Failure;
  /** the chunk was stopped early (runs after the stop were not evaluated; a shrink was cut short) */
  stopped?: boolean;
}

/**
 * The predicate of a chunk: it tallies generated runs only (not shrinking) and, once `stop()`
 * says so, passes everything without running it, so fast-check ends the chunk at once -- and a
 * shrink cut short still leaves the smallest failing case found so far, with its path.
 */
function chunkPredicate(cfg: SearchConfig, tally: Tally, stop: () => boolean): { predicate: (w: Workload) => boolean; stopped: () => boolean } {
  let shrinking = false;
  let stopped = false;
  const scratch = emptyTally();
  return {
    predicate: (w) => {
      if (stop()) {
        stopped = true;
        return true;
      }
      const fails = evaluate(cfg, w, shrinking ? scratch : tally);
      if (fails.length > 0) shrinking = true;
      return fails.length === 0;
    },
    stopped: () => stopped,
  };
}

function chunkResult(cfg: SearchConfig, seed: number, tally: Tally, details: fc.RunDetails<[Workload]>, stopped: boolean): ChunkResult {
  const r: ChunkResult = stopped ? { tally, stopped } : { tally };
  if (!details.failed || details.counterexample === null) return r;
  const s = scenarioOf(cfg, details.counterexample[0]);
  r.failure = { scenario: s, divergences: failing(runScenario(s), cfg.checkTrace), seed, path: details.counterexamplePath ?? '' };
  return r;
}

/**
 * Run one chunk. The tally counts the generated runs only (not shrinking); a failure comes back
 * shrunk, with the seed and path that replay it.
 */
export function runChunk(cfg: SearchConfig, seed: number, numRuns = CHUNK_RUNS): ChunkResult {
  const tally = emptyTally();
  const c = chunkPredicate(cfg, tally, () => false);
  const details = fc.check(fc.property(workloadArb(genOptions(cfg)), c.predicate), { seed, numRuns, endOnFailure: false });
  return chunkResult(cfg, seed, tally, details, false);
}

/** How often an interruptible chunk gives the event loop a turn (so a signal handler can run). */
const YIELD_MS = 25;

/**
 * The same chunk (the same runs, the same shrink, the same replay path: fast-check draws and
 * shrinks identically for a synchronous and an asynchronous property) that hands the event loop
 * a turn every few milliseconds, so SIGINT or SIGTERM can stop it between two runs.
 */
export async function runChunkInterruptible(cfg: SearchConfig, seed: number, numRuns: number, stop: () => boolean): Promise<ChunkResult> {
  const tally = emptyTally();
  const c = chunkPredicate(cfg, tally, stop);
  let last = Date.now();
  const prop = fc.asyncProperty(workloadArb(genOptions(cfg)), async (w) => {
    if (Date.now() - last >= YIELD_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      last = Date.now();
    }
    return c.predicate(w);
  });
  const details = await fc.check(prop, { seed, numRuns, endOnFailure: false });
  return chunkResult(cfg, seed, tally, details, c.stopped());
}

/** Replay a failure from its fast-check coordinates: the same shrunk workload. */
export function replayChunk(cfg: SearchConfig, seed: number, path: string): Failure | undefined {
  const prop = propertyOf(cfg, emptyTally());
  const details = fc.check(prop, { seed, path, numRuns: CHUNK_RUNS, endOnFailure: true });
  if (!details.failed || details.counterexample === null) return undefined;
  const s = scenarioOf(cfg, details.counterexample[0]);
  return { scenario: s, divergences: failing(runScenario(s), cfg.checkTrace), seed, path };
}
