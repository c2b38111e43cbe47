/**
 * kernel/iova.ts as a whole, for both releases, against a plain reference: a sorted array of the
 * ranges handed out and not yet freed, and the list of reserved ranges.
 *
 * Random sequences of alloc_iova / alloc_iova_fast / free_iova / free_iova_fast / reserve_iova and
 * cache flushes over a small space (start pfn 1, limits up to 0x2000, 1 or 2 CPUs). Rules checked
 * (kernel-semantics 1.1-1.5, 9.1, 10.2):
 *  - the tree stays a valid red-black tree of pairwise disjoint nodes;
 *  - what the domain has handed out (tree nodes that are not reserved and not parked in an
 *    rcache) is exactly the reference's set of live ranges -- nothing lost, nothing handed out twice;
 *  - every allocation lies in [start_pfn, limit], is aligned to roundup_pow_of_two(size) when
 *    alignment is asked for (alloc_iova_fast always asks; 6.1's alloc_iova_fast rounds sizes below
 *    32 pages up itself, 5.10 callers pass powers of two), and never touches a reserved pfn;
 *  - a parked pfn is the start of a tree node of exactly 2^class pages, and is parked once;
 *  - 6.1 searches completely (first pass below the cached node, then the retry above it): a failed
 *    search means no aligned gap exists (unless the 32-bit fast-fail applied); after a failed
 *    alloc_iova_fast with flush, every magazine is empty in 6.1 and every per-CPU magazine in 5.10;
 *  - freed space is reusable: after freeing everything and emptying the caches the tree holds only
 *    reserved nodes, max32_alloc_size is back to dma_32bit_pfn, and an allocation that fits
 *    succeeds (6.1: anywhere; 5.10: when it fits below the lowest reserved range -- free space
 *    above 5.10's cached32 node is invisible to it, kernel-semantics 7.13);
 *  - a fresh domain allocates top-down exactly (stated in the last describe block).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IovaDomain } from '../../kernel/iova.js';
import { IOVA_RANGE_CACHE_MAX_SIZE } from '../../kernel/iova-rcache.js';
import { RELEASES, type Release } from '../../kernel/release.js';

const START_PFN = 1;
const DMA32_PFN = 0x100000;

interface Range {
  lo: number;
  hi: number;
}

interface Live extends Range {
  /** 'slow': from alloc_iova, freed with free_iova; 'fast': from alloc_iova_fast */
  via: 'slow' | 'fast';
  /** the caller's (unrounded) page count, what free_iova_fast is given */
  npages: number;
}

/** roundup_pow_of_two, written out here so the expectation does not come from release.ts */
function pow2Ceil(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** order_base_2 */
function log2Ceil(n: number): number {
  let o = 0;
  while (2 ** o < n) o++;
  return o;
}

/** the page count alloc_iova_fast really allocates for a caller's npages */
function fastSize(release: Release, npages: number): number {
  // 5.10: intel_alloc_iova rounds every request to a power of two before calling.
  // 6.1: alloc_iova_fast rounds sizes below 32 (1 << (IOVA_RANGE_CACHE_MAX_SIZE - 1)) itself.
  if (release === '5.10') return pow2Ceil(npages);
  return npages < 32 ? pow2Ceil(npages) : npages;
}

function overlaps(a: Range, b: Range): boolean {
  return a.lo <= b.hi && b.lo <= a.hi;
}

/** Is there an aligned run of `size` pages inside [START_PFN, limit] that no node covers? */
function fitsAmong(nodes: readonly Range[], size: number, limit: number, align: number): boolean {
  const sorted = [...nodes].sort((a, b) => a.lo - b.lo);
  let gapLo = START_PFN;
  const gaps: Range[] = [];
  for (const n of sorted) {
    if (n.lo > gapLo) gaps.push({ lo: gapLo, hi: n.lo - 1 });
    gapLo = Math.max(gapLo, n.hi + 1);
  }
  gaps.push({ lo: gapLo, hi: Number.MAX_SAFE_INTEGER });
  for (const g of gaps) {
    const a = Math.ceil(g.lo / align) * align;
    if (a + size - 1 <= Math.min(g.hi, limit)) return true;
  }
  return false;
}

/** All tree nodes below the anchor, as ranges with their reserved flag. */
function treeNodes(d: IovaDomain): Array<Range & { reserved: boolean }> {
  const out: Array<Range & { reserved: boolean }> = [];
  for (const n of d.tree.inOrder()) if (n !== d.anchor) out.push({ lo: n.pfnLo, hi: n.pfnHi, reserved: n.reserved });
  return out;
}

/** Every parked pfn with its size class, read from the magazines and the depot. */
function parked(d: IovaDomain): Array<{ pfn: number; cls: number }> {
  const out: Array<{ pfn: number; cls: number }> = [];
  d.rcaches.forEach((rc, cls) => {
    for (const c of rc.cpu) for (const p of [...c.loaded, ...c.prev]) out.push({ pfn: p, cls });
    for (const m of rc.depot) for (const p of m) out.push({ pfn: p, cls });
  });
  return out;
}

function checkInvariants(d: IovaDomain, live: readonly Live[], reserved: readonly Range[]): void {
  expect(() => d.tree.verify()).not.toThrow();
  const nodes = treeNodes(d);
  const problems: string[] = [];
  for (let i = 1; i < nodes.length; i++) if (nodes[i]!.lo <= nodes[i - 1]!.hi) problems.push(`nodes overlap at 0x${nodes[i]!.lo.toString(16)}`);
  // what is handed out is exactly the reference
  const ref = live.map((r) => ({ pfnLo: r.lo, pfnHi: r.hi })).sort((a, b) => a.pfnLo - b.pfnLo);
  expect(d.inUseRanges()).toEqual(ref);
  // parked pfns: each the start of a non-reserved node of 2^class pages, parked once, not in use
  const ps = parked(d);
  if (new Set(ps.map((p) => p.pfn)).size !== ps.length) problems.push('a pfn is parked twice');
  const liveLo = new Set(live.map((r) => r.lo));
  for (const p of ps) {
    const n = d.findIova(p.pfn);
    if (n === null || n.reserved || n.pfnLo !== p.pfn || n.pfnHi - n.pfnLo + 1 !== 2 ** p.cls) problems.push(`parked 0x${p.pfn.toString(16)} is not a free ${2 ** p.cls}-page node`);
    if (liveLo.has(p.pfn)) problems.push(`parked 0x${p.pfn.toString(16)} is in use`);
  }
  // reserved pfns stay reserved: no allocated node touches a reserved range
  for (const n of nodes) if (!n.reserved) for (const r of reserved) if (overlaps(n, r)) problems.push(`node 0x${n.lo.toString(16)} overlaps a reservation`);
  for (const r of reserved) if (d.findIova(r.lo)?.reserved !== true || d.findIova(r.hi)?.reserved !== true) problems.push(`reservation 0x${r.lo.toString(16)} lost`);
  expect(problems).toEqual([]);
}

type Op =
  | { k: 'slow'; npages: number; limit: number; aligned: boolean }
  | { k: 'fast'; cpu: number; npages: number; limit: number; flush: boolean }
  | { k: 'free'; pick: number }
  | { k: 'freeFast'; cpu: number; pick: number }
  | { k: 'reserve'; lo: number; len: number }
  | { k: 'flushCpu'; cpu: number }
  | { k: 'flushGlobal' };

// small limits make the space run out (failures, 6.1 retries, flushes); large ones exercise the tree
const limitArb = fc.oneof(
  fc.constantFrom(0x3f, 0x7f, 0xff, 0x1ff),
  fc.constantFrom(0x7ff, 0xfff, 0x17ff, 0x1fff, 0x2000),
  fc.integer({ min: 16, max: 0x2000 }),
);
const cpuArb = fc.integer({ min: 0, max: 1 });
// mostly small requests, so that frees and allocations meet in the same rcache size class
const npagesArb = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(1, 1, 2, 3, 4, 8) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 40 }) });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ k: fc.constant('slow' as const), npages: fc.integer({ min: 1, max: 48 }), limit: limitArb, aligned: fc.boolean() }) },
  { weight: 6, arbitrary: fc.record({ k: fc.constant('fast' as const), cpu: cpuArb, npages: npagesArb, limit: limitArb, flush: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('free' as const), pick: fc.nat() }) },
  { weight: 5, arbitrary: fc.record({ k: fc.constant('freeFast' as const), cpu: cpuArb, pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('reserve' as const), lo: fc.integer({ min: 1, max: 0x2000 }), len: fc.integer({ min: 1, max: 64 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('flushCpu' as const), cpu: cpuArb }) },
  { weight: 1, arbitrary: fc.constant({ k: 'flushGlobal' as const }) },
);

const scenarioArb = fc.record({
  ncpus: fc.integer({ min: 1, max: 2 }),
  initialReserved: fc.array(fc.record({ lo: fc.integer({ min: 1, max: 0x2000 }), len: fc.integer({ min: 1, max: 256 }) }), { maxLength: 3 }),
  ops: fc.array(opArb, { minLength: 10, maxLength: 90, size: 'max' }),
  // the final reuse request
  finalSize: fc.integer({ min: 1, max: 256 }),
  finalLimit: limitArb,
  finalAligned: fc.boolean(),
});

type Scenario = typeof scenarioArb extends fc.Arbitrary<infer T> ? T : never;

function runScenario(release: Release, s: Scenario): void {
  const d = new IovaDomain(release, 4096, START_PFN, s.ncpus);
  const live: Live[] = [];
  const reserved: Range[] = [];
  const reserve = (lo: number, hi: number): void => {
    // reserve only where no allocated (or parked) node is: widening a handed-out node is legal in
    // the kernel but not something a DMA domain does after set-up
    if (d.liveRanges().some((n) => n.pfnLo <= hi && lo <= n.pfnHi)) return;
    const n = d.reserveIova(lo, hi);
    expect(n).not.toBeNull();
    expect(n!.reserved).toBe(true);
    reserved.push({ lo, hi });
  };
  for (const r of s.initialReserved) reserve(r.lo, r.lo + r.len - 1);

  const checkNewRange = (lo: number, size: number, limit: number, align: number): Range => {
    const r = { lo, hi: lo + size - 1 };
    expect(r.lo).toBeGreaterThanOrEqual(START_PFN);
    expect(r.hi).toBeLessThanOrEqual(limit);
    expect(r.lo % align).toBe(0);
    for (const x of live) expect(overlaps(x, r)).toBe(false);
    for (const x of reserved) expect(overlaps(x, r)).toBe(false);
    const n = d.findIova(lo);
    expect(n).not.toBeNull();
    expect({ lo: n!.pfnLo, hi: n!.pfnHi }).toEqual(r);
    return r;
  };

  for (const op of s.ops) {
    switch (op.k) {
      case 'slow': {
        const max32Before = d.max32AllocSize;
        const n = d.allocIova(op.npages, op.limit, op.aligned);
        const align = op.aligned ? pow2Ceil(op.npages) : 1;
        if (n !== null) {
          const r = checkNewRange(n.pfnLo, op.npages, op.limit, align);
          live.push({ ...r, via: 'slow', npages: op.npages });
        } else if (release === '6.1') {
          const fastFail = op.limit + 1 <= DMA32_PFN && op.npages >= max32Before;
          expect(fastFail || !fitsAmong(treeNodes(d), op.npages, op.limit, align)).toBe(true);
        }
        break;
      }
      case 'fast': {
        const size = fastSize(release, op.npages);
        const max32Before = d.max32AllocSize;
        // 5.10 callers round before calling; 6.1 callers pass the page count as is
        const pfn = d.allocIovaFast(op.cpu % s.ncpus, release === '5.10' ? size : op.npages, op.limit, op.flush);
        if (pfn !== 0) {
          const r = checkNewRange(pfn, size, op.limit, pow2Ceil(size));
          live.push({ ...r, via: 'fast', npages: op.npages });
        } else {
          if (op.flush) {
            // the flush ran before the retry: 6.1 empties every magazine and the depot
            // (6fa3525b455a), 5.10 every CPU's loaded and prev magazines only
            for (const rc of d.rcaches) {
              for (const c of rc.cpu) expect(c.loaded.length + c.prev.length).toBe(0);
              if (release === '6.1') expect(rc.depot.length).toBe(0);
            }
          }
          // 6.1's search is complete: no aligned gap among the tree's nodes (parked ones included),
          // unless the 32-bit fast fail applied
          if (release === '6.1') {
            const fastFail = op.limit + 1 <= DMA32_PFN && size >= max32Before;
            expect(fastFail || !fitsAmong(treeNodes(d), size, op.limit, pow2Ceil(size))).toBe(true);
          }
        }
        break;
      }
      case 'free': {
        if (live.length === 0) break;
        const r = live.splice(op.pick % live.length, 1)[0]!;
        d.freeIova(r.lo);
        expect(d.findIova(r.lo)).toBeNull();
        break;
      }
      case 'freeFast': {
        const fast = live.filter((r) => r.via === 'fast');
        if (fast.length === 0) break;
        const r = fast[op.pick % fast.length]!;
        live.splice(live.indexOf(r), 1);
        d.freeIovaFast(op.cpu % s.ncpus, r.lo, r.npages);
        // cached ranges stay allocated in the tree; uncacheable ones (class >= 6) go back to it
        if (log2Ceil(r.npages) >= IOVA_RANGE_CACHE_MAX_SIZE) expect(d.findIova(r.lo)).toBeNull();
        break;
      }
      case 'reserve':
        reserve(op.lo, Math.min(op.lo + op.len - 1, 0x2000));
        break;
      case 'flushCpu':
        d.freeCpuCachedIovas(op.cpu % s.ncpus);
        for (const rc of d.rcaches) expect(rc.cpu[op.cpu % s.ncpus]!.loaded.length + rc.cpu[op.cpu % s.ncpus]!.prev.length).toBe(0);
        break;
      case 'flushGlobal':
        // free_global_cached_iovas exists in 6.1 only (5.10 drains its depot only at teardown)
        if (release === '6.1') {
          d.freeGlobalCachedIovas();
          for (const rc of d.rcaches) expect(rc.depot.length).toBe(0);
        }
        break;
    }
    checkInvariants(d, live, reserved);
  }

  // ---- free everything, empty every cache: nothing leaks, the space is reusable
  const allocatedBefore = d.liveRanges().length;
  for (const r of live.splice(0)) {
    if (r.via === 'fast') d.freeIovaFast(0, r.lo, r.npages);
    else d.freeIova(r.lo);
  }
  for (let c = 0; c < s.ncpus; c++) d.freeCpuCachedIovas(c);
  d.freeGlobalCachedIovas();
  expect(d.liveRanges()).toEqual([]);
  expect(d.cachedPfns().size).toBe(0);
  expect(treeNodes(d).every((n) => n.reserved)).toBe(true);
  checkInvariants(d, live, reserved);
  // 5b61343b5059 (both releases): any free below 4 GiB resets max32_alloc_size
  if (allocatedBefore > 0) expect(d.max32AllocSize).toBe(DMA32_PFN);

  const size = s.finalSize;
  const align = s.finalAligned ? pow2Ceil(size) : 1;
  const fitsAnywhere = fitsAmong(reserved, size, s.finalLimit, align);
  const lowestReserved = reserved.length === 0 ? Infinity : Math.min(...reserved.map((r) => r.lo));
  const fitsBelowReserved = fitsAmong([], size, Math.min(s.finalLimit, lowestReserved - 1), align);
  // a size at or above max32_alloc_size fails fast by design (checked exactly in iova.sequences)
  const notBlocked = size < d.max32AllocSize;
  const n = d.allocIova(size, s.finalLimit, s.finalAligned);
  if (!fitsAnywhere) expect(n).toBeNull();
  if (release === '6.1' && fitsAnywhere && notBlocked) expect(n).not.toBeNull();
  if (release === '5.10' && fitsBelowReserved && notBlocked) expect(n).not.toBeNull();
  if (n !== null) {
    expect(n.pfnLo).toBeGreaterThanOrEqual(START_PFN);
    expect(n.pfnHi).toBeLessThanOrEqual(s.finalLimit);
    expect(n.pfnLo % align).toBe(0);
    for (const r of reserved) expect(overlaps({ lo: n.pfnLo, hi: n.pfnHi }, r)).toBe(false);
  }
}

describe.each(RELEASES)('IOVA allocator %s: random sequences against a reference', (release) => {
  it('keeps ranges disjoint, within limits, aligned, off reserved pfns; frees are reusable', () => {
    fc.assert(
      fc.property(scenarioArb, (s) => runScenario(release, s)),
      { seed: release === '5.10' ? 0x105 : 0x601, numRuns: 150 },
    );
  });
});

describe.each(RELEASES)('IOVA allocator %s: a fresh domain allocates top-down exactly', (release) => {
  /*
   * The rule (kernel-semantics 1.2 / 9.1.2 / 10.2): with align = roundup_pow_of_two(size) when
   * aligned (1 otherwise), the first allocation of size s below limit L lands at
   * floor((L + 1 - s) / align) * align; every later one at floor((previous pfn_lo - s) / align) *
   * align, i.e. directly below the previous range, skipping the alignment holes above it (the
   * search starts at the cached node, the last range inserted).
   */
  const reqArb = fc.record({ npages: fc.integer({ min: 1, max: 64 }), how: fc.constantFrom('aligned' as const, 'unaligned' as const, 'fast' as const) });

  const run = (limit: number, reqs: ReadonlyArray<{ npages: number; how: 'aligned' | 'unaligned' | 'fast' }>): void => {
    const d = new IovaDomain(release, 4096, START_PFN, 1);
    let top = limit + 1;
    for (const q of reqs) {
      const size = q.how === 'fast' ? fastSize(release, q.npages) : q.npages;
      const align = q.how === 'unaligned' ? 1 : pow2Ceil(size);
      const expected = Math.floor((top - size) / align) * align;
      if (top < size || expected < START_PFN) break; // the space is used up: the rule stops here
      let got: number;
      if (q.how === 'fast') got = d.allocIovaFast(0, release === '5.10' ? size : q.npages, limit, false);
      else got = d.allocIova(size, limit, q.how === 'aligned')?.pfnLo ?? 0;
      expect(got).toBe(expected);
      top = expected;
    }
  };

  it('below a 32-bit limit (the cached32 node)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0x40, max: 0x2000 }), fc.array(reqArb, { minLength: 1, maxLength: 40, size: 'max' }), (limit, reqs) => run(limit, reqs)),
      { seed: release === '5.10' ? 0x7d105 : 0x7d601, numRuns: 200 },
    );
  });

  it('below a 39-bit limit (the cached node, above 4 GiB)', () => {
    fc.assert(
      fc.property(fc.array(reqArb, { minLength: 1, maxLength: 40, size: 'max' }), (reqs) => run(0x7ffffff, reqs)),
      { seed: release === '5.10' ? 0x39105 : 0x39601, numRuns: 100 },
    );
  });

  it('the worked example of kernel-semantics 1.2: 1, 1, 2, 3->4 pages below 0xfffff', () => {
    const d = new IovaDomain(release, 4096, START_PFN, 1);
    expect(d.allocIova(1, 0xfffff, true)?.pfnLo).toBe(0xfffff);
    expect(d.allocIova(1, 0xfffff, true)?.pfnLo).toBe(0xffffe);
    expect(d.allocIova(2, 0xfffff, true)?.pfnLo).toBe(0xffffc);
    expect(d.allocIova(4, 0xfffff, true)?.pfnLo).toBe(0xffff8);
  });
});
