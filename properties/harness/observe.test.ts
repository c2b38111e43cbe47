/**
 * The observation model's reachable-set difference (observe.ts diffReachable). Trace accounting
 * has its own suite, trace-account.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { diffReachable, type Reachable } from '../../harness/check/observe.js';

describe('diffReachable', () => {
  const R = (pages: Array<[number, number]>, pooled: Array<[string, number]> = []): Reachable => ({ pages: new Map(pages), pooled: new Map(pooled) });

  it('equal sets: no difference', () => {
    expect(diffReachable(R([[0x3400, 1]], [['swiotlb:3', 2]]), R([[0x3400, 1]], [['swiotlb:3', 2]]))).toBeNull();
  });

  it('pages by address and permission; only pages the second set reaches at all are "extra"', () => {
    const d = diffReachable(R([[0x3400, 1]]), R([
      [0x3400, 3],
      [0x3403, 1],
    ]))!;
    expect(d.onlyA).toEqual(['0x3400000:r']);
    expect(d.onlyB).toEqual(['0x3400000:rw', '0x3403000:r']);
    expect(d.extraBPfns).toEqual([0x3403]);
  });

  it('pooled pages by count only', () => {
    const d = diffReachable(R([], [['swiotlb:1', 2]]), R([], [['swiotlb:1', 1]]))!;
    expect(d.onlyA).toEqual(['1 swiotlb:1 page(s)']);
    expect(d.onlyB).toEqual([]);
    expect(d.extraBPfns).toEqual([]);
  });
});
