/**
 * The IOVA allocator's run-time invariants fire when the structure is broken behind its back:
 * iova.c's BUG_ON/WARN_ON cases (always on) and the tree walk after each insert and delete
 * (on in this suite through vitest's setup file). Each test breaks one thing by hand and expects
 * the message written for it.
 */
import { describe, expect, it } from 'vitest';
import { InvariantError, invariantChecks } from '../../kernel/assert.js';
import { IovaDomain } from '../../kernel/iova.js';
import { checkIovaTree } from '../../kernel/iova-invariants.js';
import { newNode } from '../../kernel/rbtree.js';

const LIMIT32 = 0xfffff;

function domain(): IovaDomain {
  return new IovaDomain('6.1', 4096, 1, 1);
}

const bug = (msg: string): InvariantError => new InvariantError(`BUG: ${msg}`);

describe('the suite runs with the costly checks on', () => {
  it('vitest.setup.ts turned invariantChecks on', () => {
    expect(invariantChecks.on).toBe(true);
  });
});

describe("iova.c's BUG_ON and WARN_ON cases, always on", () => {
  it('init_iova_domain: a granule that is not a power of two', () => {
    expect(() => new IovaDomain('6.1', 3000, 1, 1)).toThrow(bug('init_iova_domain: the granule is not a power of two up to PAGE_SIZE'));
  });

  it("free_iova of a pfn no range holds is quietly nothing, as in the kernel (a path's double free is the gate's to find)", () => {
    for (const release of ['5.10', '6.1'] as const) {
      const d = new IovaDomain(release, 4096, 1, 1);
      expect(d.allocIova(1, LIMIT32, false)?.pfnLo).toBe(0xfffff);
      d.freeIova(0x42);
      expect(d.liveRanges()).toEqual([{ pfnLo: 0xfffff, pfnHi: 0xfffff }]);
    }
  });

  it('reserve_iova with pfn_lo > pfn_hi', () => {
    expect(() => domain().reserveIova(0x500, 0x400)).toThrow(bug('reserve_iova: pfn_lo > pfn_hi'));
  });

  it('reserve_iova over a range already handed out widens that range, as iova.c does (__adjust_overlap_range)', () => {
    const d = domain();
    const n = d.allocIova(1, LIMIT32, false);
    expect(n?.pfnLo).toBe(0xfffff);
    // [0xff000, 0xfffff] overlaps [0xfffff, 0xfffff]: the node's pfn_lo drops to 0xff000 and it
    // now holds the whole request, so it is the answer and nothing new is inserted
    expect(d.reserveIova(0xff000, 0xfffff)).toBe(n);
    expect([n?.pfnLo, n?.pfnHi]).toEqual([0xff000, 0xfffff]);
  });

  it('a second range at the same pfn_lo is left out of the tree (iova_insert_rbtree: WARN_ON, return)', () => {
    const d = domain();
    expect(d.reserveIova(0x100, 0x1ff)?.pfnLo).toBe(0x100);
    expect(() => d.tree.insert(newNode(0x100, 0x100))).not.toThrow();
    expect([...d.tree.inOrder()].map((n) => [n.pfnLo, n.pfnHi])).toContainEqual([0x100, 0x1ff]);
    expect([...d.tree.inOrder()].filter((n) => n.pfnLo === 0x100)).toHaveLength(1);
  });

  it('iova_magazine_free_pfns: a cached pfn no range holds is skipped and the rest freed, in both releases (WARN_ON since d3e3d2be688b)', () => {
    for (const release of ['5.10', '6.1'] as const) {
      const d = new IovaDomain(release, 4096, 1, 1);
      expect(d.allocIova(1, LIMIT32, false)?.pfnLo).toBe(0xfffff);
      d.rcaches[0]!.cpu[0]!.loaded.push(0x1234, 0xfffff);
      expect(() => d.freeCpuCachedIovas(0)).not.toThrow();
      expect(d.liveRanges()).toEqual([]);
    }
  });

  it('iova_magazine_pop: an empty magazine in the depot', () => {
    const d = domain();
    d.rcaches[0]!.depot.push([]);
    expect(() => d.allocIovaFast(0, 1, LIMIT32, false)).toThrow(bug('iova_magazine_pop: the magazine is empty'));
  });

  it('iova_magazine_push: a magazine size the selection does not expect leaves the new magazine full', () => {
    const d = domain();
    (d as unknown as { magSize: number }).magSize = 0;
    const pfn = d.allocIovaFast(0, 1, LIMIT32, false);
    expect(pfn).toBe(0xfffff);
    expect(() => d.freeIovaFast(0, pfn, 1)).toThrow(bug('iova_magazine_push: the magazine is full'));
  });

  it('freeing the anchor: no node above it for the cached nodes to move to', () => {
    const d = domain();
    expect(() => d.removeIova(d.anchor)).toThrow(new InvariantError('expected a node above the freed one (the anchor is above every range)'));
  });
});

describe('the tree walk after each insert and delete (invariantChecks.on)', () => {
  it('an overlapping range inserted behind the allocator is found at the next free', () => {
    const d = domain();
    const a = d.allocIova(1, LIMIT32, false)!;
    const b = d.allocIova(1, LIMIT32, false)!;
    expect([a.pfnLo, b.pfnLo]).toEqual([0xfffff, 0xffffe]);
    d.tree.insert(newNode(0x800, 0xffffe));
    expect(() => d.freeIova(0xfffff)).toThrow(new InvariantError('iova tree after remove_iova: ranges [0x800, 0xffffe] and [0xffffe, 0xffffe] overlap or are out of order'));
  });

  it('a range with pfn_lo > pfn_hi inserted behind the allocator is found at the next allocation', () => {
    const d = domain();
    d.tree.insert(newNode(0x500, 0x400));
    expect(() => d.allocIova(1, LIMIT32, false)).toThrow(new InvariantError('iova tree after alloc_iova: range [0x500, 0x400] has pfn_lo > pfn_hi'));
  });

  it('the cached node removed behind the allocator is found at the next allocation', () => {
    const d = domain();
    const high = d.allocIova(1, 0x1fffff, false)!;
    expect(high.pfnLo).toBe(0x1fffff);
    expect(d.cachedNode).toBe(high);
    d.tree.remove(high);
    expect(() => d.allocIova(1, LIMIT32, false)).toThrow(new InvariantError('iova tree after alloc_iova: cached_node [0x1fffff, 0x1fffff] is not in the tree'));
  });

  it('the cached 32-bit node removed behind the allocator is found at the next reservation', () => {
    const d = domain();
    const low = d.allocIova(1, LIMIT32, false)!;
    expect(d.cached32Node).toBe(low);
    d.tree.remove(low);
    expect(() => d.reserveIova(0x10, 0x1f)).toThrow(new InvariantError('iova tree after reserve_iova: cached32_node [0xfffff, 0xfffff] is not in the tree'));
  });

  it('a node count that disagrees with the walk', () => {
    const d = domain();
    d.tree.size += 1;
    expect(() => checkIovaTree(d, 'a test')).toThrow(new InvariantError("iova tree after a test: the in-order walk meets 1 of the tree's 2 nodes"));
  });

  it('a range above the anchor', () => {
    const d = domain();
    d.tree.insert(newNode(2 ** 64 + 2 ** 20, 2 ** 64 + 2 ** 20));
    expect(() => checkIovaTree(d, 'a test')).toThrow(new InvariantError('iova tree after a test: the anchor is not the last node'));
  });

  it('a sound domain passes, through allocations, frees, caches and reservations', () => {
    const d = new IovaDomain('5.10', 4096, 1, 2);
    d.reserveIova(0xfee00, 0xfeeff);
    const pfns = [1, 2, 4, 64].map((n, i) => d.allocIovaFast(i % 2, n, LIMIT32, true));
    expect(pfns).toEqual([0xfffff, 0xffffc, 0xffff8, 0xfff80]);
    for (const [i, p] of pfns.entries()) d.freeIovaFast(i % 2, p, [1, 2, 4, 64][i]!);
    d.freeCpuCachedIovas(0);
    d.freeCpuCachedIovas(1);
    expect(() => checkIovaTree(d, 'a test')).not.toThrow();
    expect(d.liveRanges()).toEqual([]);
  });
});
