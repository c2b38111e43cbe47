/**
 * The differential property: a generated workload, normalised into a scenario on one platform,
 * runs on both paths; it holds when no divergence outside the allowlist appears. Runs are grouped
 * in chunks, each with its own seed derived from the base seed and the chunk number, so a budget
 * can be split over shards (chunk c belongs to shard c mod n) and still cover the same runs.
 */
import fc from 'fast-check';
import type { SeededBugs } from './paths.js';
import { padPages } from './allowlist.js';
import type { Divergence } from './checker.js';
import { toScenario, workloadArb, type Workload } from './generators.js';
import { failing, runScenario, type ResultDoc } from './runner.js';
import type { Consumer, Platform, Scenario } from './scenario.js';

/** runs per chunk: each chunk is one fast-check run with its own seed */
export const CHUNK_RUNS = 25;

export interface NamedPlatform {
  name: string;
  platform: Platform;
  /** leave only 5 MiB of IOVA space below 4 GiB free: 32-bit exhaustion and fallback */
  tight32?: boolean;
}

const ALL_SP: Platform['superpages'] = ['2M', '1G'];

/** The default platform matrix of the gate. */
export const PLATFORM_MATRIX: readonly NamedPlatform[] = [
  { name: 'qemu-strict', platform: { agaw: 39, cachingMode: false, zlr: false, superpages: ALL_SP, strict: true, forcedac: false, cpus: 1 } },
  { name: 'lazy-2cpu', platform: { agaw: 48, cachingMode: false, zlr: false, superpages: ALL_SP, strict: false, forcedac: false, cpus: 2 } },
  { name: 'caching-mode', platform: { agaw: 39, cachingMode: true, zlr: false, superpages: ['2M'], strict: false, forcedac: false, cpus: 1 } },
  { name: 'aw57-forcedac', platform: { agaw: 57, cachingMode: false, zlr: true, superpages: [], strict: true, forcedac: true, cpus: 2 } },
  { name: 'tight32', platform: { agaw: 48, cachingMode: false, zlr: false, superpages: ALL_SP, strict: true, forcedac: false, cpus: 1 }, tight32: true },
];

export const COVERAGE_BRANCHES = ['bounce', 'superpage', 'rcache-reuse', '32bit-fallback', 'merge', 'no-merge', 'seg-pad', 'cm-flush', 'fq-full', 'fq-timer', 'fault'] as const;
export type Branch = (typeof COVERAGE_BRANCHES)[number];

export interface SearchConfig {
  platform: NamedPlatform;
  consumers: Consumer[];
  maxSteps: number;
  traceParity: boolean;
  /** seeded bugs in the generic path (tests of the harness) */
  faults: SeededBugs;
}

export interface Tally {
  runs: number;
  steps: number;
  divergences: number;
  allowlisted: number;
  coverage: Record<Branch, number>;
}

export function emptyTally(): Tally {
  const coverage = Object.fromEntries(COVERAGE_BRANCHES.map((b) => [b, 0])) as Record<Branch, number>;
  return { runs: 0, steps: 0, divergences: 0, allowlisted: 0, coverage };
}

export function addTally(a: Tally, b: Tally): void {
  a.runs += b.runs;
  a.steps += b.steps;
  a.divergences += b.divergences;
  a.allowlisted += b.allowlisted;
  for (const k of COVERAGE_BRANCHES) a.coverage[k] += b.coverage[k];
}

/** The scenario a workload stands for on a platform. */
export function scenarioOf(cfg: SearchConfig, w: Workload): Scenario {
  const s = toScenario(cfg.platform.platform, w, cfg.consumers);
  if (cfg.platform.tight32) s.reserved.push({ start: 0x10_0000n, end: 0xffbf_ffffn });
  return s;
}

/** Which interesting branches one run went through. */
function branchesHit(s: Scenario, doc: ResultDoc, gen: ReturnType<typeof runWithBoundaries>['stats']): Set<Branch> {
  const hit = new Set<Branch>();
  const both = [gen['legacy-intel'], gen['dma-iommu']];
  if (both.some((x) => x.swiotlbMaps > 0)) hit.add('bounce');
  if (both.some((x) => x.superpageLeaves > 0)) hit.add('superpage');
  if (both.some((x) => x.rcacheHits > 0)) hit.add('rcache-reuse');
  if (both.some((x) => x.iovaSearchFailures > 0)) hit.add('32bit-fallback');
  if (both.some((x) => x.cmMapFlushes > 0)) hit.add('cm-flush');
  if (both.some((x) => x.fqFullFlushes > 0)) hit.add('fq-full');
  if (both.some((x) => x.fqTimerFlushes > 0)) hit.add('fq-timer');
  const g = doc.paths['dma-iommu'].steps;
  s.steps.forEach((st, i) => {
    if (st.op === 'map_sg' && g[i]!.ok && st.sg.length > 1) hit.add(g[i]!.count! < st.sg.length ? 'merge' : 'no-merge');
    if (st.op === 'map_sg' && g[i]!.ok && padPages(st.sg, gen.boundaryAt[i] ?? 0xffff_ffffn).size > 0) hit.add('seg-pad');
    if (g[i]!.fault !== undefined) hit.add('fault');
  });
  return hit;
}

/** runScenario, plus the segment boundary in force at each map_sg step (for the pad branch). */
function runWithBoundaries(s: Scenario, faults: SeededBugs): { doc: ResultDoc; stats: ResultDoc['stats'] & { boundaryAt: Record<number, bigint> } } {
  const doc = runScenario(s, { faults });
  const boundaryAt: Record<number, bigint> = {};
  const bounds = new Map(s.devices.map((d) => [d.id, d.segBoundaryMask]));
  s.steps.forEach((st, i) => {
    if (st.op === 'set_seg_boundary') bounds.set(st.dev, st.mask);
    if (st.op === 'map_sg') boundaryAt[i] = bounds.get(st.dev)!;
  });
  return { doc, stats: { ...doc.stats, boundaryAt } };
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
  const { doc, stats } = runWithBoundaries(s, cfg.faults);
  tally.runs++;
  tally.steps += s.steps.length;
  tally.divergences += doc.divergences.length;
  tally.allowlisted += doc.divergences.filter((d) => d.allowlisted !== undefined).length;
  for (const b of branchesHit(s, doc, stats)) tally.coverage[b]++;
  return failing(doc, cfg.traceParity);
}

export function propertyOf(cfg: SearchConfig, tally: Tally): fc.IPropertyWithHooks<[Workload]> {
  return fc.property(workloadArb({ consumers: cfg.consumers, maxSteps: cfg.maxSteps, maxDevices: 2 }), (w) => evaluate(cfg, w, tally).length === 0);
}

/** seed of chunk c: a fixed mix of the base seed and the chunk number (32-bit) */
export function chunkSeed(base: number, c: number): number {
  let x = (base ^ Math.imul(c + 1, 0x9e3779b1)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
  return (x ^ (x >>> 16)) | 0;
}

/**
 * Run one chunk. The tally counts the generated runs only (not shrinking); a failure comes back
 * shrunk, with the seed and path that replay it.
 */
export function runChunk(cfg: SearchConfig, seed: number, numRuns = CHUNK_RUNS): { tally: Tally; failure?: Failure } {
  const tally = emptyTally();
  let shrinking = false;
  const scratch = emptyTally();
  const prop = fc.property(workloadArb({ consumers: cfg.consumers, maxSteps: cfg.maxSteps, maxDevices: 2 }), (w) => {
    const fails = evaluate(cfg, w, shrinking ? scratch : tally);
    if (fails.length > 0) shrinking = true;
    return fails.length === 0;
  });
  const details = fc.check(prop, { seed, numRuns, endOnFailure: false });
  if (!details.failed || details.counterexample === null) return { tally };
  const w = details.counterexample[0];
  const s = scenarioOf(cfg, w);
  return {
    tally,
    failure: { scenario: s, divergences: failing(runScenario(s, { faults: cfg.faults }), cfg.traceParity), seed, path: details.counterexamplePath ?? '' },
  };
}

/** Replay a failure from its fast-check coordinates: the same shrunk workload. */
export function replayChunk(cfg: SearchConfig, seed: number, path: string): Failure | undefined {
  const prop = propertyOf(cfg, emptyTally());
  const details = fc.check(prop, { seed, path, numRuns: CHUNK_RUNS, endOnFailure: true });
  if (!details.failed || details.counterexample === null) return undefined;
  const s = scenarioOf(cfg, details.counterexample[0]);
  return { scenario: s, divergences: failing(runScenario(s, { faults: cfg.faults }), cfg.traceParity), seed, path };
}
