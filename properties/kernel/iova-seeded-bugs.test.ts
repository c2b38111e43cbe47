/**
 * kernel/iova.ts: the 6.1 allocator's seeded bugs (IovaFaults). Each case is a small domain
 * (granule 4 KiB, start pfn 1, one CPU) where the correct 6.1 allocator (kernel-semantics 9.1.2,
 * 9.1.4) succeeds and the broken one fails; every pfn is worked out by hand in the comments.
 * The switches must not act on a 5.10 domain.
 */
import { describe, expect, it } from 'vitest';
import { IovaDomain, type IovaFaults } from '../../kernel/iova.js';

function domain6(faults: IovaFaults = {}): IovaDomain {
  return new IovaDomain('6.1', 4096, 1, 1, faults);
}

describe('retryFromCachedNode (__alloc_and_insert_iova_range)', () => {
  /**
   * [1, 0xffb] reserved; 1 page lands at 0xfff, then 2 pages (aligned to 2) at 0xffc-0xffd,
   * leaving 0xffe free above cached32 = [0xffc]. The next page: the first pass (below 0xffc)
   * finds only the reserved range; the retry from the top (iova_find_limit(0x1000) = the
   * anchor) with low = 0xffe finds 0xffe.
   */
  function scenario(faults: IovaFaults): { d: IovaDomain; got: number | null } {
    const d = domain6(faults);
    d.reserveIova(1, 0xffb);
    expect(d.allocIova(1, 0xfff, true)?.pfnLo).toBe(0xfff);
    expect(d.allocIova(2, 0xfff, true)?.pfnLo).toBe(0xffc);
    const n = d.allocIova(1, 0xfff, true);
    return { d, got: n === null ? null : n.pfnLo };
  }

  it('off: the retry from the top finds the hole at 0xffe (counted as a retry success)', () => {
    const { d, got } = scenario({});
    expect(got).toBe(0xffe);
    expect(d.counters.retrySuccesses).toBe(1);
    expect(d.counters.slowPathFailures).toBe(0);
  });

  it('on: the retry walks from 0xffc again and fails; max32_alloc_size becomes 1', () => {
    const { d, got } = scenario({ retryFromCachedNode: true });
    expect(got).toBeNull();
    expect(d.counters.retrySuccesses).toBe(0);
    expect(d.counters.slowPathFailures).toBe(1);
    expect(d.max32AllocSize).toBe(1);
  });
});

describe('roundAllToPowerOfTwo (alloc_iova_fast)', () => {
  it('off: 33 pages stay 33 (aligned to 64): [0xfc0, 0xfe0] below 0x1000', () => {
    const d = domain6();
    expect(d.allocIovaFast(0, 33, 0xfff, true)).toBe(0xfc0);
    expect(d.liveRanges()).toEqual([{ pfnLo: 0xfc0, pfnHi: 0xfe0 }]);
  });

  it('on: 33 pages become 64: [0xfc0, 0xfff]', () => {
    const d = domain6({ roundAllToPowerOfTwo: true });
    expect(d.allocIovaFast(0, 33, 0xfff, true)).toBe(0xfc0);
    expect(d.liveRanges()).toEqual([{ pfnLo: 0xfc0, pfnHi: 0xfff }]);
    // freed with the caller's 33: class 6 is not cached, so it goes back to the tree
    d.freeIovaFast(0, 0xfc0, 33);
    expect(d.liveRanges()).toEqual([]);
  });

  /** [1, 0xfbf] reserved and 0xfff taken: 33 pages fit at 0xfc0-0xfe0, 64 aligned pages nowhere. */
  function scenario(faults: IovaFaults): number {
    const d = domain6(faults);
    d.reserveIova(1, 0xfbf);
    expect(d.allocIovaFast(0, 1, 0xfff, false)).toBe(0xfff);
    return d.allocIovaFast(0, 33, 0xfff, true);
  }

  it('off: the 33-page allocation succeeds at 0xfc0', () => {
    expect(scenario({})).toBe(0xfc0);
  });

  it('on: the rounded 64-page allocation fails', () => {
    expect(scenario({ roundAllToPowerOfTwo: true })).toBe(0);
  });

  it('a 5.10 domain ignores the switch (its callers round, alloc_iova_fast does not)', () => {
    const d = new IovaDomain('5.10', 4096, 1, 1, { roundAllToPowerOfTwo: true });
    expect(d.allocIovaFast(0, 33, 0xfff, true)).toBe(0xfc0);
    expect(d.liveRanges()).toEqual([{ pfnLo: 0xfc0, pfnHi: 0xfe0 }]);
  });
});

describe('noDepotFlushOnFailure (alloc_iova_fast)', () => {
  /**
   * [1, 0xeff] reserved; 256 single pages 0xfff..0xf00 allocated, then freed in that order on
   * CPU 0 (magazines of 127): the first 127 (0xfff..0xf81) end in prev, the next 127
   * (0xf80..0xf02) in the depot, the last two (0xf01, 0xf00) in loaded. A 256-page request needs
   * all of [0xf00, 0xfff]: it fails, the caches are emptied, the retry runs.
   */
  function scenario(faults: IovaFaults): { d: IovaDomain; got: number } {
    const d = domain6(faults);
    d.reserveIova(1, 0xeff);
    for (let i = 0; i < 256; i++) expect(d.allocIovaFast(0, 1, 0xfff, false)).toBe(0xfff - i);
    for (let i = 0; i < 256; i++) d.freeIovaFast(0, 0xfff - i, 1);
    expect(d.counters.depotPushes).toBe(1);
    return { d, got: d.allocIovaFast(0, 256, 0xfff, true) };
  }

  it('off: the depot is emptied too and the retry gets [0xf00, 0xfff]', () => {
    const { d, got } = scenario({});
    expect(got).toBe(0xf00);
    expect(d.counters.rcacheFlushRetries).toBe(1);
    expect(d.counters.depotFlushes).toBe(1);
    expect(d.cachedPfns().size).toBe(0);
  });

  it('on: the depot\'s 127 pages stay allocated and the retry fails', () => {
    const { d, got } = scenario({ noDepotFlushOnFailure: true });
    expect(got).toBe(0);
    expect(d.counters.rcacheFlushRetries).toBe(1);
    expect(d.counters.depotFlushes).toBe(0);
    expect(d.cachedPfns().size).toBe(127);
  });

  it('a failure with an empty depot does not count as a depot flush', () => {
    const d = domain6();
    d.reserveIova(1, 0xfff);
    expect(d.allocIovaFast(0, 1, 0xfff, true)).toBe(0);
    expect(d.counters.rcacheFlushRetries).toBe(1);
    expect(d.counters.depotFlushes).toBe(0);
  });
});
