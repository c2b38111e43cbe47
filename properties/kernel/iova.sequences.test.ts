/**
 * kernel/iova.ts: exact outcomes of short allocator sequences, each derived by hand from the
 * kernel rules (kernel-semantics 1.2-1.5, 7.13, 9.1, 10.2, 10.13) and written as literal pfns.
 */
import { describe, expect, it, vi } from 'vitest';
import { IovaDomain } from '../../kernel/iova.js';
import { RELEASES, type Release } from '../../kernel/release.js';

const DMA32_PFN = 0x100000;
/** IOVA_PFN(DMA_BIT_MASK(32)) */
const LIMIT32 = 0xfffff;
/** DOMAIN_MAX_ADDR(39) >> 12 / aperture_end(39) >> 12 */
const LIMIT39 = 0x7ffffff;

function domain(release: Release, ncpus = 1): IovaDomain {
  // both paths: granule 4096, start_pfn 1 (IOVA_START_PFN / iommu_dma_init_domain)
  return new IovaDomain(release, 4096, 1, ncpus);
}

/** Count rb_prev steps (the tree walk of __alloc_and_insert_iova_range) during fn. */
function walkSteps(d: IovaDomain, fn: () => void): number {
  const spy = vi.spyOn(d.tree, 'prev');
  try {
    fn();
    return spy.mock.calls.length;
  } finally {
    spy.mockRestore();
  }
}

describe.each(RELEASES)('%s: a 64-bit PCI device, 32-bit first, IOAPIC window reserved', (release) => {
  it('lands at 0xfffff, 0xffffe, 0xffffd, then 2 @0xffffa, 4 @0xffff4, 16 @0xfffe0, 32 @0xfffc0 (oracle steps 1-7)', () => {
    const d = domain(release);
    d.reserveIova(0xfee00, 0xfeeff);
    // the oracle's page counts: 1, 1, 1, 0xff0+0x20 -> 2, 12 KiB -> 3, 64 KiB -> 16, 128 KiB -> 32;
    // 5.10's intel_alloc_iova rounds to a power of two before alloc_iova_fast, 6.1's alloc_iova_fast
    // rounds sizes below 32 itself
    const pages = release === '5.10' ? [1, 1, 1, 2, 4, 16, 32] : [1, 1, 1, 2, 3, 16, 32];
    const got = pages.map((n) => d.allocIovaFast(0, n, LIMIT32, false));
    expect(got).toEqual([0xfffff, 0xffffe, 0xffffd, 0xffffa, 0xffff4, 0xfffe0, 0xfffc0]);
    // and on (steps 8-10): 1 -> 0xfffbf, 2 -> 0xfffbc, 0x800 + 4 KiB = 2 pages -> 0xfffba
    expect([1, 2, 2].map((n) => d.allocIovaFast(0, n, LIMIT32, false))).toEqual([0xfffbf, 0xfffbc, 0xfffba]);
    // the holes left by alignment (0xffffc, 0xffff8-9, 0xffff0-3, 0xfffbe) are not revisited:
    // the next 1-page tree allocation starts at cached32 (0xfffba) -> 0xfffb9 (oracle step 17)
    expect(d.allocIovaFast(0, 1, LIMIT32, false)).toBe(0xfffb9);
    expect(d.counters.slowPathFailures).toBe(0);
  });

  it('the IOAPIC reservation 0xfee00-0xfeeff is stepped over once the allocator gets that low', () => {
    const d = domain(release);
    d.reserveIova(0xfee00, 0xfeeff);
    // 256-page ranges are never cached (class 8 >= 6) and come from the tree: 0xfff00, 0xffe00,
    // ..., 0xfef00 (17 of them), then 0xfee00 is reserved, so the 18th lands at 0xfed00
    const got: number[] = [];
    for (let i = 0; i < 18; i++) got.push(d.allocIovaFast(0, 256, LIMIT32, false));
    expect(got.slice(0, 17)).toEqual(Array.from({ length: 17 }, (_, i) => 0xfff00 - i * 0x100));
    expect(got[17]).toBe(0xfed00);
  });
});

describe.each(RELEASES)('%s: max32_alloc_size (the 32-bit fast fail, 5b61343b5059)', (release) => {
  it('a failed 32-bit search records the size; larger-or-equal requests then fail without a walk; smaller ones search; any free below 4 GiB resets it', () => {
    const d = domain(release);
    d.reserveIova(1, 0xfffbf); // 64 free pages left below 4 GiB: 0xfffc0-0xfffff
    const a = d.allocIova(16, LIMIT32, true)!;
    const b = d.allocIova(16, LIMIT32, true)!;
    const c = d.allocIova(16, LIMIT32, true)!;
    expect([a.pfnLo, b.pfnLo, c.pfnLo]).toEqual([0xffff0, 0xfffe0, 0xfffd0]);
    // one range above 4 GiB (limit 0x1fffff: the cached node, from the anchor)
    const high = d.allocIova(16, 0x1fffff, true)!;
    expect(high.pfnLo).toBe(0x1ffff0);
    // freeing b (above cached32 = c) moves cached32 to b's successor a
    d.freeIova(b.pfnLo);
    expect(d.cached32Node).toBe(a);
    expect(d.max32AllocSize).toBe(DMA32_PFN);

    // free: 0xfffc0-0xfffcf and 0xfffe0-0xfffef; no 32-aligned 32-page window -> fails in both
    // releases (6.1's retry from the top with low bound a.pfn_hi + 1 = 0x100000 finds nothing)
    expect(d.allocIova(32, LIMIT32, true)).toBeNull();
    expect(d.max32AllocSize).toBe(32);
    expect(d.counters.slowPathSearches).toBe(5);
    expect(d.counters.slowPathFailures).toBe(1);

    // the same size again, and a larger one: alloc_iova is entered (counted) but fails before
    // touching the tree
    expect(walkSteps(d, () => expect(d.allocIova(32, LIMIT32, true)).toBeNull())).toBe(0);
    expect(walkSteps(d, () => expect(d.allocIova(48, LIMIT32, false)).toBeNull())).toBe(0);
    expect(d.counters.slowPathSearches).toBe(7);
    expect(d.counters.slowPathFailures).toBe(3);
    expect(d.max32AllocSize).toBe(32);

    // a limit above 4 GiB is not blocked: it walks from the cached node (high) -> 0x1fffc0
    let above = 0;
    expect(walkSteps(d, () => (above = d.allocIova(32, 0x1fffff, true)!.pfnLo))).toBeGreaterThan(0);
    expect(above).toBe(0x1fffc0);
    // a free above 4 GiB does not reset max32_alloc_size (pfn_lo >= dma_32bit_pfn)
    d.freeIova(above);
    expect(d.max32AllocSize).toBe(32);

    // a smaller 32-bit request still searches, and succeeds in b's old place
    let smaller = 0;
    expect(walkSteps(d, () => (smaller = d.allocIova(16, LIMIT32, true)!.pfnLo))).toBeGreaterThan(0);
    expect(smaller).toBe(0xfffe0);
    const dNode = d.findIova(0xfffe0)!;
    expect(d.cached32Node).toBe(dNode);
    expect(d.max32AllocSize).toBe(32);

    // free c, which lies BELOW cached32: cached32 does not move, yet max32_alloc_size is reset
    // (5b61343b5059: any free with pfn_lo < dma_32bit_pfn; 5.10.7 reset it only with cached32)
    d.freeIova(c.pfnLo);
    expect(d.cached32Node).toBe(dNode);
    expect(d.max32AllocSize).toBe(DMA32_PFN);
    // and the 32-page request walks again and gets 0xfffc0-0xfffdf
    let again = 0;
    expect(walkSteps(d, () => (again = d.allocIova(32, LIMIT32, true)!.pfnLo))).toBeGreaterThan(0);
    expect(again).toBe(0xfffc0);
  });

  it('a failed search above 4 GiB also records max32_alloc_size ("whatever the limit")', () => {
    const d = domain(release);
    d.reserveIova(1, 0x1fffff);
    expect(d.allocIova(4, 0x1fffff, true)).toBeNull();
    expect(d.max32AllocSize).toBe(4);
    expect(walkSteps(d, () => expect(d.allocIova(4, LIMIT32, true)).toBeNull())).toBe(0);
    expect(walkSteps(d, () => expect(d.allocIova(2, LIMIT32, true)).toBeNull())).toBeGreaterThan(0);
    // the 2-page search failed for real, so the estimate drops to 2
    expect(d.max32AllocSize).toBe(2);
  });

  it('a failed SAC attempt through alloc_iova_fast records it too (kernel-semantics 9.3)', () => {
    const d = domain(release);
    d.reserveIova(1, 0xffff7); // 8 free pages below 4 GiB
    expect(d.allocIovaFast(0, 16, LIMIT32, false)).toBe(0);
    expect(d.max32AllocSize).toBe(16);
    expect(d.allocIovaFast(0, 8, LIMIT32, false)).toBe(0xffff8);
  });
});

describe.each(RELEASES)('%s: rcache reuse', (release) => {
  it('is LIFO per CPU: free p1, p2 on cpu 0 -> cpu 0 gets p2 then p1; cpu 1 goes to the tree', () => {
    const d = domain(release, 2);
    const p1 = d.allocIovaFast(0, 1, LIMIT32, false);
    const p2 = d.allocIovaFast(0, 1, LIMIT32, false);
    expect([p1, p2]).toEqual([0xfffff, 0xffffe]);
    d.freeIovaFast(0, p1, 1);
    d.freeIovaFast(0, p2, 1);
    // still allocated in the tree while parked
    expect(d.findIova(p1)).not.toBeNull();
    expect(d.findIova(p2)).not.toBeNull();
    const searches = d.counters.slowPathSearches;
    expect(d.allocIovaFast(1, 1, LIMIT32, false)).toBe(0xffffd);
    expect(d.counters.slowPathSearches).toBe(searches + 1);
    expect(d.allocIovaFast(0, 1, LIMIT32, false)).toBe(0xffffe);
    expect(d.allocIovaFast(0, 1, LIMIT32, false)).toBe(0xfffff);
    expect(d.counters.slowPathSearches).toBe(searches + 1);
    expect(d.counters.rcacheHits).toBe(2);
    // the magazine is empty again: the tree, below cached32 (0xffffd)
    expect(d.allocIovaFast(0, 1, LIMIT32, false)).toBe(0xffffc);
  });

  it('the limit filter skips cached pfns whose range would end above the limit; the pop swaps the last entry in', () => {
    const d = domain(release);
    const [a, b, c] = [1, 2, 3].map(() => d.allocIovaFast(0, 1, LIMIT32, false));
    expect([a, b, c]).toEqual([0xfffff, 0xffffe, 0xffffd]);
    // magazine, bottom to top: [0xffffe, 0xfffff, 0xffffd]
    d.freeIovaFast(0, b!, 1);
    d.freeIovaFast(0, a!, 1);
    d.freeIovaFast(0, c!, 1);
    // limit 0xffffe: the top (0xffffd) fits -> LIFO
    expect(d.allocIovaFast(0, 1, 0xffffe, false)).toBe(0xffffd);
    // limit 0xffffe again: top is now 0xfffff (> limit) -> skipped, 0xffffe taken; 0xfffff moves
    // into its slot
    expect(d.allocIovaFast(0, 1, 0xffffe, false)).toBe(0xffffe);
    expect(d.rcaches[0]!.cpu[0]!.loaded).toEqual([0xfffff]);
    // limit 0xffffd: nothing in the magazine fits -> a miss, and the tree gives 0xffffc
    const misses = d.counters.rcacheMisses;
    expect(d.allocIovaFast(0, 1, 0xffffd, false)).toBe(0xffffc);
    expect(d.counters.rcacheMisses).toBe(misses + 1);
    expect(d.cachedPfns()).toEqual(new Set([0xfffff]));
    // size classes are separate: 2 pages do not take the parked 1-page pfn
    expect(d.allocIovaFast(0, 2, LIMIT32, false)).toBe(0xffffa);
    expect(d.cachedPfns()).toEqual(new Set([0xfffff]));
  });

  it('frees pass the unrounded page count; order_base_2 puts 3 pages in the 4-page class', () => {
    const d = domain(release);
    const n = release === '5.10' ? 4 : 3;
    const p = d.allocIovaFast(0, n, LIMIT32, false);
    expect(p).toBe(0xffffc);
    expect(d.findIova(p)!.pfnHi).toBe(0xfffff);
    d.freeIovaFast(0, p, 3);
    expect(d.rcaches[2]!.cpu[0]!.loaded).toEqual([0xffffc]);
    expect(d.allocIovaFast(0, n, LIMIT32, false)).toBe(0xffffc);
  });

  it('33 pages and more are never cached: free_iova_fast returns them to the tree at once', () => {
    const d = domain(release);
    const p = d.allocIovaFast(0, 64, LIMIT32, false);
    expect(p).toBe(0xfffc0);
    d.freeIovaFast(0, p, 33);
    expect(d.findIova(p)).toBeNull();
    expect(d.cachedPfns().size).toBe(0);
  });
});

describe('magazine size: 128 pfns in 5.10, 127 in 6.1', () => {
  const cases: Array<[Release, number]> = [
    ['5.10', 128],
    ['6.1', 127],
  ];
  it.each(cases)('%s: loaded and prev fill up; the (2 x %i + 1)-th free moves a full magazine to the depot', (release, mag) => {
    const d = domain(release);
    const n = 2 * mag + 1;
    const pfns: number[] = [];
    for (let i = 0; i < n; i++) pfns.push(d.allocIova(1, LIMIT39, true)!.pfnLo);
    pfns.forEach((p, i) => {
      d.freeIovaFast(0, p, 1);
      expect(d.counters.depotPushes).toBe(i + 1 === n ? 1 : 0);
    });
    const rc = d.rcaches[0]!;
    // frees 1..mag went to prev (swapped out at free mag+1), mag+1..2mag to the depot, the last
    // one is alone in a fresh loaded magazine
    expect(rc.cpu[0]!.prev).toEqual(pfns.slice(0, mag));
    expect(rc.depot).toEqual([pfns.slice(mag, 2 * mag)]);
    expect(rc.cpu[0]!.loaded).toEqual([pfns[2 * mag]]);
    // a get on an empty loaded takes prev first; the depot is taken only when both are empty
    for (let i = 0; i < mag + 1; i++) d.allocIovaFast(0, 1, LIMIT39, false);
    expect(d.counters.depotPops).toBe(0);
    expect(d.allocIovaFast(0, 1, LIMIT39, false)).toBe(pfns[2 * mag - 1]);
    expect(d.counters.depotPops).toBe(1);
  });

  it.each(cases)('%s: the depot is a stack: with loaded and prev empty, a get takes the magazine pushed last', (release, mag) => {
    const d = domain(release);
    const n = 3 * mag + 1;
    const pfns: number[] = [];
    for (let i = 0; i < n; i++) pfns.push(d.allocIova(1, LIMIT39, true)!.pfnLo);
    for (const p of pfns) d.freeIovaFast(0, p, 1);
    // depot: [frees mag+1..2mag, frees 2mag+1..3mag]; prev: frees 1..mag; loaded: the last free
    expect(d.rcaches[0]!.depot).toEqual([pfns.slice(mag, 2 * mag), pfns.slice(2 * mag, 3 * mag)]);
    expect(d.allocIovaFast(0, 1, LIMIT39, false)).toBe(pfns[3 * mag]);
    // then prev (swapped in), LIFO from its top
    expect(d.allocIovaFast(0, 1, LIMIT39, false)).toBe(pfns[mag - 1]);
    for (let i = 1; i < mag; i++) d.allocIovaFast(0, 1, LIMIT39, false);
    expect(d.counters.depotPops).toBe(0);
    // both empty: the last depot magazine, popped from its top
    expect(d.allocIovaFast(0, 1, LIMIT39, false)).toBe(pfns[3 * mag - 1]);
    expect(d.counters.depotPops).toBe(1);
    expect(d.rcaches[0]!.depot).toEqual([pfns.slice(mag, 2 * mag)]);
  });

  it.each(cases)('%s: with 32 magazines in the depot (MAX_GLOBAL_MAGS) the next full one (%i pfns) goes back to the tree', (release, mag) => {
    const d = domain(release);
    // the k-th depot push happens at free (k+1)*mag + 1; the depot is full after free 33*mag + 1;
    // at free 34*mag + 1 the loaded magazine (frees 33*mag+1 .. 34*mag) is emptied into the tree
    const n = 34 * mag + 1;
    const pfns: number[] = [];
    for (let i = 0; i < n; i++) pfns.push(d.allocIova(1, LIMIT39, true)!.pfnLo);
    for (let i = 0; i < n - 1; i++) d.freeIovaFast(0, pfns[i]!, 1);
    expect(d.counters.depotPushes).toBe(32);
    expect(d.counters.depotOverflows).toBe(0);
    d.freeIovaFast(0, pfns[n - 1]!, 1);
    expect(d.counters.depotPushes).toBe(32);
    expect(d.counters.depotOverflows).toBe(1);
    const freedToTree = pfns.slice(33 * mag, 34 * mag);
    expect(freedToTree.every((p) => d.findIova(p) === null)).toBe(true);
    expect(pfns.slice(0, 33 * mag).every((p) => d.findIova(p) !== null)).toBe(true);
    expect(d.rcaches[0]!.cpu[0]!.loaded).toEqual([pfns[n - 1]]);
  });
});

describe('5.10 fails where 6.1 retries (kernel-semantics 7.13, 10.2)', () => {
  /*
   * 5.10's search starts below cached32_node and never looks above it. A narrower mask (30 bits,
   * oracle step 77) moves cached32 down to 0x3ffff; if nothing is free below it, a 32-bit request
   * fails in 5.10 although 0x40000-0xfffff is empty (except the IOAPIC window), and records
   * max32_alloc_size. 6.1's retry searches again from the top with low bound cached.pfn_hi + 1.
   */
  const setup = (release: Release): IovaDomain => {
    const d = domain(release);
    d.reserveIova(0xfee00, 0xfeeff);
    d.reserveIova(1, 0x3fffe);
    expect(d.allocIovaFast(0, 1, 0x3ffff, true)).toBe(0x3ffff);
    expect(d.cached32Node.pfnLo).toBe(0x3ffff);
    return d;
  };

  it('5.10: the SAC attempt returns 0 and sets max32_alloc_size = 1; the device falls back to 0x7ffffff', () => {
    const d = setup('5.10');
    expect(d.allocIovaFast(0, 1, LIMIT32, false)).toBe(0);
    expect(d.max32AllocSize).toBe(1);
    // every later 32-bit request of any size fails fast, even with a flush (nothing to flush)
    expect(walkSteps(d, () => expect(d.allocIovaFast(0, 1, LIMIT32, true)).toBe(0))).toBe(0);
    // intel_alloc_iova's second attempt with the clamped 64-bit mask
    expect(d.allocIovaFast(0, 1, LIMIT39, true)).toBe(0x7ffffff);
  });

  it('6.1: the retry searches [0x40000, 0xfffff] from the top and returns 0xfffff', () => {
    const d = setup('6.1');
    expect(d.allocIovaFast(0, 1, LIMIT32, false)).toBe(0xfffff);
    expect(d.max32AllocSize).toBe(DMA32_PFN);
    expect(d.counters.slowPathFailures).toBe(0);
  });

  it.each(RELEASES)('%s: with free space below the cached node both land right under it (kernel-semantics 10.13 prediction: 0x3fffe)', (release) => {
    const d = domain(release);
    d.reserveIova(0xfee00, 0xfeeff);
    expect(d.allocIovaFast(0, 1, 0x3ffff, true)).toBe(0x3ffff);
    expect(d.allocIovaFast(0, 1, LIMIT32, false)).toBe(0x3fffe);
  });

  it.each(RELEASES)('%s: freeing the cached32 node moves cached32 to its successor, the IOAPIC reservation; the next 32-bit range lands under the window at 0xfedff', (release) => {
    const d = setup(release);
    d.freeIova(0x3ffff);
    expect(d.cached32Node.pfnLo).toBe(0xfee00);
    expect(d.allocIovaFast(0, 1, LIMIT32, false)).toBe(0xfedff);
  });
});

describe('alloc_iova_fast flush on failure: 5.10 empties per-CPU magazines only, 6.1 the depot too (6fa3525b455a)', () => {
  /*
   * Construction (M = magazine size): everything below B = 0x100000 - (2M + 1) is reserved, and the
   * 2M + 1 pages B .. 0xfffff are allocated one by one (top-down) and freed with free_iova_fast in
   * this order: the high M pages B+M+1 .. B+2M (they end in prev), the low M pages B .. B+M-1
   * (they fill loaded, which is pushed to the depot at the last free), then B+M (alone in loaded).
   * A 1-page request with limit B+M-1: the loaded magazine holds only B+M (above the limit) -> miss;
   * the tree is full -> fail; the flush frees loaded and prev (all above the limit); only the
   * depot's pages are below it.
   */
  const build = (release: Release, mag: number, base: number): { d: IovaDomain; limit: number; low: number[] } => {
    const d = domain(release);
    d.reserveIova(1, base - 1);
    const pfns: number[] = [];
    for (let i = 0; i < 2 * mag + 1; i++) pfns.push(d.allocIovaFast(0, 1, LIMIT32, false));
    expect(pfns[0]).toBe(0xfffff);
    expect(pfns[2 * mag]).toBe(base);
    const at = (k: number): number => base + k;
    const high = Array.from({ length: mag }, (_, i) => at(mag + 1 + i));
    const low = Array.from({ length: mag }, (_, i) => at(i));
    for (const p of [...high, ...low, at(mag)]) d.freeIovaFast(0, p, 1);
    expect(d.counters.depotPushes).toBe(1);
    expect(d.rcaches[0]!.depot).toEqual([low]);
    return { d, limit: at(mag - 1), low };
  };

  it('5.10 (M = 128, B = 0xffeff): returns 0; the depot keeps its 128 pages; max32_alloc_size = 1', () => {
    const { d, limit, low } = build('5.10', 128, 0xffeff);
    expect(limit).toBe(0xfff7e);
    expect(d.allocIovaFast(0, 1, limit, true)).toBe(0);
    expect(d.counters.rcacheFlushRetries).toBe(1);
    expect(d.rcaches[0]!.cpu[0]!.loaded).toEqual([]);
    expect(d.rcaches[0]!.cpu[0]!.prev).toEqual([]);
    expect(d.rcaches[0]!.depot).toEqual([low]);
    expect(low.every((p) => d.findIova(p) !== null)).toBe(true);
    expect(d.max32AllocSize).toBe(1);
  });

  it('6.1 (M = 127, B = 0xfff01): the retry after emptying the depot returns 0xfff7f', () => {
    const { d, limit } = build('6.1', 127, 0xfff01);
    expect(limit).toBe(0xfff7f);
    expect(d.allocIovaFast(0, 1, limit, true)).toBe(0xfff7f);
    expect(d.counters.rcacheFlushRetries).toBe(1);
    expect(d.rcaches[0]!.depot).toEqual([]);
    expect(d.cachedPfns().size).toBe(0);
    expect(d.max32AllocSize).toBe(DMA32_PFN);
  });
});

describe.each(RELEASES)('%s: reserve_iova', (release) => {
  it('widens an overlapping node downwards, skips past it and inserts the rest; cached nodes stay', () => {
    const d = domain(release);
    const r1 = d.reserveIova(0x100, 0x1ff)!;
    // [0x80, 0x17f] overlaps r1 from below and ends inside it: r1 becomes [0x80, 0x1ff]
    expect(d.reserveIova(0x80, 0x17f)).toBe(r1);
    expect([r1.pfnLo, r1.pfnHi]).toEqual([0x80, 0x1ff]);
    // [0x1f0, 0x2ff] overlaps r1's top: the remainder [0x200, 0x2ff] is a new node
    const r2 = d.reserveIova(0x1f0, 0x2ff)!;
    expect([r2.pfnLo, r2.pfnHi]).toEqual([0x200, 0x2ff]);
    expect(r2.reserved).toBe(true);
    expect(d.cachedNode).toBe(d.anchor);
    expect(d.cached32Node).toBe(d.anchor);
    // pfns above 2^52 - 1 are refused (WARN_ON)
    expect(d.reserveIova(2 ** 52, 2 ** 52)).toBeNull();
    // allocations go around the reserved nodes: 64 pages below 0x2ff land under r1 at 0x40;
    // 128 aligned pages would need pfn 0, below start_pfn
    expect(d.allocIova(0x40, 0x2ff, true)?.pfnLo).toBe(0x40);
    expect(d.allocIova(0x80, 0x2ff, true)).toBeNull();
  });
});
