/**
 * IOVA exhaustion (harness/check/exhaustion.ts): 6.1 fails an allocation only when no naturally aligned
 * free range of its (rounded) size exists below the limit once the caches are emptied. The
 * situations are built by hand in the exhaustion platforms' window -- 1024 pages across 1 GiB,
 * [0x3fe00000, 0x40200000), everything else reserved -- and the IOVAs worked out here.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { SeededBugs } from '../../harness/run/paths.js';
import { failing, runScenario, type ResultDoc } from '../../harness/run/runner.js';
import { parseScenario } from '../../harness/workload/validation.js';
import { EDU, scenarioJson, type StepJson } from '../support/scenario.js';

const WINDOW_RESERVED = [
  { start: '0x1000', end: '0x3fdfffff' },
  { start: '0x40200000', end: '0x7fffffffff' },
];

function run(steps: StepJson[], faults: SeededBugs = {}, cpus = 1): ResultDoc {
  return runScenario(parseScenario(scenarioJson({ platform: { cpus }, devices: [{ ...EDU, dmaMask: 32, coherentMask: 32 }], reserved: WINDOW_RESERVED, steps })), { faults });
}

const pages = (n: number): number => n * 4096;
const exhaustion = (doc: ResultDoc): ResultDoc['divergences'] => doc.divergences.filter((d) => d.kind === 'exhaustion');

/**
 * 511 pages under a 30-bit mask take [0x3fe00, 0x3fffe] on 6.1 (aligned to 512, not rounded);
 * 5.10 rounds to 512 and takes [0x3fe00, 0x3ffff]. The 32-bit cached node is now that range, so
 * a 2-page request under a 32-bit mask finds nothing below it: 5.10 fails, 6.1 retries from the
 * top and takes 0x401fe.
 */
const RETRY: StepJson[] = [
  { op: 'set_dma_mask', dev: 'dev', bits: 30, which: 'both' },
  { op: 'map_page', dev: 'dev', phys: '0x20000000', size: pages(511), dir: 'to_device', as: 'low' },
  { op: 'set_dma_mask', dev: 'dev', bits: 32, which: 'both' },
  { op: 'map_page', dev: 'dev', phys: '0x20400000', size: pages(2), dir: 'to_device', as: 'top' },
];

describe("6.1's retry from the top", () => {
  it('the unbroken 6.1 takes 0x401fe000 where 5.10 fails (D4), and nothing else differs', () => {
    const doc = run(RETRY);
    expect(doc.paths['dma-iommu'].steps[1]).toEqual({ ok: true, dma: '0x3fe00000' });
    expect(doc.paths['dma-iommu'].steps[3]).toEqual({ ok: true, dma: '0x401fe000' });
    expect(doc.paths['legacy-intel'].steps[3]).toEqual({ ok: false });
    expect(exhaustion(doc)).toEqual([]);
    expect(doc.divergences.find((d) => d.kind === 'outcome')?.allowlisted).toBe('D4');
    expect(failing(doc)).toEqual([]);
    expect(doc.stats['dma-iommu'].iovaRetrySuccesses).toBe(1);
  });

  it('retryFromCachedNode: 6.1 fails like 5.10, the paths agree -- and the exhaustion check names the free range', () => {
    const doc = run(RETRY, { retryFromCachedNode: true });
    expect(doc.paths['dma-iommu'].steps[3]).toEqual({ ok: false });
    const e = exhaustion(doc);
    expect(e.map((d) => [d.step, d.map, d.path])).toEqual([[3, 'top', 'dma-iommu']]);
    expect(e[0]!.detail).toContain('2 IOVA page(s)');
    // the lowest fit: the whole upper half is free under the 32-bit limit
    expect(e[0]!.detail).toContain('although 0x40000000.. was free');
    expect(failing(doc).map((d) => d.kind)).toEqual(['exhaustion']);
    expect(doc.stats['dma-iommu'].iovaRetrySuccesses).toBe(0);
  });
});

describe('a list that exists on one path only', () => {
  it('a device read of it is a D4 difference, not a crash (regression: the probe asked for the failed side\'s segments)', () => {
    const steps: StepJson[] = [
      ...RETRY.slice(0, 3),
      { op: 'map_sg', dev: 'dev', dir: 'to_device', as: 'top', sg: [{ phys: '0x20400000', length: pages(2) }] },
      { op: 'dma_read', map: 'top', offset: 0, len: 4 },
    ];
    const doc = run(steps);
    expect(doc.paths['legacy-intel'].steps[3]).toEqual({ ok: false });
    expect(doc.paths['dma-iommu'].steps[3]!.ok).toBe(true);
    const read = doc.divergences.filter((d) => d.step === 4);
    expect(read.length).toBeGreaterThan(0);
    for (const d of read) expect(d.allowlisted).toBe('D4');
  });
});

describe("6.1's rounding: below 32 pages only", () => {
  /**
   * 257 pages take [0x40000, 0x40100] on 6.1 (not rounded, aligned to 512); 5.10 rounds to 512,
   * [0x40000, 0x401ff]. 512 more take the lower half, [0x3fe00, 0x3ffff], on both. A 128-page
   * request then fits on 6.1 at 0x40180 (found by the retry from the top), not on 5.10.
   */
  const STEPS: StepJson[] = [
    { op: 'map_page', dev: 'dev', phys: '0x20000000', size: pages(257), dir: 'to_device', as: 'a' },
    { op: 'map_page', dev: 'dev', phys: '0x20400000', size: pages(512), dir: 'to_device', as: 'b' },
    { op: 'map_page', dev: 'dev', phys: '0x20800000', size: pages(128), dir: 'to_device', as: 'c' },
  ];

  it('unbroken: 6.1 places 257 pages at 0x40000000 and still has room for 128 more at 0x40180000', () => {
    const doc = run(STEPS);
    expect(doc.paths['dma-iommu'].steps.map((r) => r.dma)).toEqual(['0x40000000', '0x3fe00000', '0x40180000']);
    expect(exhaustion(doc)).toEqual([]);
    expect(failing(doc)).toEqual([]);
  });

  it('roundAllToPowerOfTwo: 6.1 rounds 257 to 512 and then fails the 128 pages that fit', () => {
    const doc = run(STEPS, { roundAllToPowerOfTwo: true });
    expect(doc.paths['dma-iommu'].steps[2]).toEqual({ ok: false });
    expect(exhaustion(doc).map((d) => d.step)).toEqual([2]);
  });
});

describe("6.1 empties the depot on failure (6fa3525b455a)", () => {
  /**
   * 300 one-page maps under the 32-bit mask take 0x401ff down to 0x400d4, all in the upper half
   * of the window. Unmapped, they fill the magazines: once loaded and prev are full (127 each on
   * 6.1, 128 on 5.10) the full loaded magazine goes to the depot. A 512-page map under a 30-bit
   * mask then takes the lower half, [0x3fe00, 0x3ffff]. A 512-page request under the 32-bit mask
   * needs the whole upper half: free only once every cached pfn, the depot's included, is back
   * in the tree.
   */
  function depotSteps(): StepJson[] {
    const steps: StepJson[] = [];
    for (let j = 0; j < 300; j++) steps.push({ op: 'map_page', dev: 'dev', phys: `0x${(0x1000000 + j * 4096).toString(16)}`, size: 4096, dir: 'to_device', as: `p${j}` });
    for (let j = 299; j >= 0; j--) steps.push({ op: 'unmap', map: `p${j}` });
    steps.push({ op: 'set_dma_mask', dev: 'dev', bits: 30, which: 'both' });
    steps.push({ op: 'map_page', dev: 'dev', phys: '0x20000000', size: pages(512), dir: 'to_device', as: 'low' });
    steps.push({ op: 'set_dma_mask', dev: 'dev', bits: 32, which: 'both' });
    steps.push({ op: 'map_page', dev: 'dev', phys: '0x20800000', size: pages(512), dir: 'to_device', as: 'big' });
    return steps;
  }

  it('unbroken: the big map succeeds on 6.1 after emptying the depot; 5.10 keeps its depot and fails (D4)', () => {
    const doc = run(depotSteps());
    const last = doc.paths['dma-iommu'].steps.length - 1;
    expect(doc.paths['dma-iommu'].steps[last]!.ok).toBe(true);
    expect(doc.paths['legacy-intel'].steps[last]!.ok).toBe(false);
    expect(doc.stats['dma-iommu'].depotFlushes).toBeGreaterThan(0);
    expect(exhaustion(doc)).toEqual([]);
    expect(failing(doc)).toEqual([]);
  });

  it('noDepotFlushOnFailure: 6.1 fails too; the exhaustion check sees the free range', () => {
    const doc = run(depotSteps(), { noDepotFlushOnFailure: true });
    const last = doc.paths['dma-iommu'].steps.length - 1;
    expect(doc.paths['dma-iommu'].steps[last]!.ok).toBe(false);
    expect(exhaustion(doc).map((d) => d.step)).toEqual([last]);
    expect(doc.stats['dma-iommu'].depotFlushes).toBe(0);
  });
});

/**
 * 6.1's 32-bit fast fail (kernel-semantics 9.1.2 steps 2 and 6): a failed search sets
 * max32_alloc_size to its size whatever the limit, and a later request under a 32-bit limit of
 * that size or more fails at once, free space or not. 512 pages under a 30-bit mask fill the
 * window's lower half; one more page under 30 bits fails (max32_alloc_size = 1); one page under
 * 32 bits then fails at once, though the upper half is free.
 */
const FAST_FAIL: StepJson[] = [
  { op: 'set_dma_mask', dev: 'dev', bits: 30, which: 'both' },
  { op: 'map_page', dev: 'dev', phys: '0x20000000', size: pages(512), dir: 'to_device', as: 'low' },
  { op: 'map_page', dev: 'dev', phys: '0x20400000', size: pages(1), dir: 'to_device', as: 'none' },
  { op: 'set_dma_mask', dev: 'dev', bits: 32, which: 'both' },
  { op: 'map_page', dev: 'dev', phys: '0x20400000', size: pages(1), dir: 'to_device', as: 'fast' },
];

describe('the exhaustion check knows the 32-bit fast fail', () => {
  it('after a failed 1-page search, a 1-page 32-bit request fails at once on both releases: not reported', () => {
    const doc = run(FAST_FAIL);
    expect(doc.paths['dma-iommu'].steps.map((r) => r.ok)).toEqual([true, true, false, true, false]);
    expect(doc.paths['legacy-intel'].steps[4]!.ok).toBe(false);
    expect(exhaustion(doc)).toEqual([]);
    expect(failing(doc)).toEqual([]);
  });

  it('without the failed search before it, the same request is judged: a 6.1 that skips the retry is reported', () => {
    const steps = FAST_FAIL.filter((s) => !('as' in s) || s.as !== 'none');
    const fine = run(steps);
    expect(fine.paths['dma-iommu'].steps[3]!.ok).toBe(true);
    const broken = run(steps, { retryFromCachedNode: true });
    expect(broken.paths['dma-iommu'].steps[3]!.ok).toBe(false);
    expect(exhaustion(broken).map((d) => d.step)).toEqual([3]);
  });

  it('unmapping the 512 pages (too many for the rcaches) frees them to the tree and resets max32_alloc_size: the next 1-page request succeeds', () => {
    const steps: StepJson[] = [...FAST_FAIL.slice(0, 4), { op: 'unmap', map: 'low' }, { op: 'map_page', dev: 'dev', phys: '0x20400000', size: pages(1), dir: 'to_device', as: 'after' }];
    const fine = run(steps);
    expect(fine.paths['dma-iommu'].steps[5]!.ok).toBe(true);
    expect(failing(fine)).toEqual([]);
  });
});

/**
 * Two shapes the gate's exhaustion workloads met that comparison must not call divergences
 * (found by an exhaust-1cpu search with a directed 30-bit-then-wider workload, shrunk):
 * - exhaust-d4-widened-permission: mappings that exist only on 6.1 (D4) reach a page both paths
 *   reach, with write permission 5.10 does not give it, plus one more coherent page;
 * - exhaust-untrusted-sg-unwind: an untrusted device's list fails on both releases, 6.1 after
 *   mapping and unwinding its first entries (iommu_dma_map_sg_swiotlb maps entry by entry), 5.10
 *   at its first allocation: the events cancel within the step.
 */
describe('exhaustion regressions', () => {
  const fixture = (name: string): ResultDoc =>
    runScenario(parseScenario(JSON.parse(readFileSync(new URL(`../fixtures/${name}.scenario.json`, import.meta.url), 'utf8')) as Record<string, unknown>));

  it('a permission widened by a 6.1-only mapping is D4', () => {
    const doc = fixture('exhaust-d4-widened-permission');
    const reach = doc.divergences.filter((d) => d.kind === 'reachable' && d.step === 7);
    expect(reach).toHaveLength(1);
    expect(reach[0]!.onlyLegacy).toEqual(['0x20000000:r']);
    expect(reach[0]!.allowlisted).toBe('D4');
    expect(failing(doc)).toEqual([]);
  });

  it('map and unmap events of a list that failed on both paths cancel', () => {
    const doc = fixture('exhaust-untrusted-sg-unwind');
    const last = doc.paths['dma-iommu'].steps.length - 1;
    expect(doc.paths['dma-iommu'].steps[last]!.ok).toBe(false);
    expect(doc.paths['legacy-intel'].steps[last]!.ok).toBe(false);
    expect(doc.paths['dma-iommu'].trace.filter((t) => t.step === last && t.event === 'map').length).toBeGreaterThan(0);
    expect(doc.divergences).toEqual([]);
  });
});
