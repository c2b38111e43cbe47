/**
 * The page-number containers under the reach tracker and trace accounting (page-map.ts):
 * PageMap against a plain Map -- random sets, deletes, clears and range queries, around block
 * edges and at page numbers near 2^45 (57-bit IOVAs), give the same answers, and a negative
 * value is refused; PfnList settles to the distinct pages ascending (two ascending runs merged,
 * anything else sorted) and stays bounded by them when nobody reads it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PageMap, PfnList } from '../../harness/check/page-map.js';

type Op = { op: 'set'; pfn: number; v: number } | { op: 'delete'; pfn: number } | { op: 'range'; first: number; pages: number } | { op: 'clear' };

/** page numbers clustered around a few bases so that blocks fill, empty and are reused */
const pfnArb = fc.tuple(fc.constantFrom(0, 63, 64, 4096, 2 ** 27 - 3, 2 ** 45 - 70), fc.integer({ min: 0, max: 200 })).map(([b, o]) => b + o);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('set' as const), pfn: pfnArb, v: fc.oneof(fc.nat(), fc.constant(2 ** 52 + 3)) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('delete' as const), pfn: pfnArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('range' as const), first: pfnArb, pages: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.constant(2 ** 46)) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'clear' as const }) },
);

/** flat (pfn, value) pairs as sorted [pfn, value] tuples */
function pairs(flat: readonly number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out.sort((a, b) => a[0] - b[0]);
}

describe('PageMap', () => {
  it('answers as a plain Map does', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 200 }), (ops) => {
        const m = new PageMap();
        const ref = new Map<number, number>();
        for (const o of ops) {
          switch (o.op) {
            case 'set':
              m.set(o.pfn, o.v);
              ref.set(o.pfn, o.v);
              break;
            case 'delete':
              expect(m.delete(o.pfn)).toBe(ref.delete(o.pfn));
              break;
            case 'clear':
              m.clear();
              ref.clear();
              break;
            case 'range': {
              const want = [...ref].filter(([p]) => p >= o.first && p < o.first + o.pages).sort((a, b) => a[0] - b[0]);
              expect(pairs(m.inRange(o.first, o.pages))).toEqual(want);
              break;
            }
          }
          expect(m.size).toBe(ref.size);
        }
        for (const [p, v] of ref) expect(m.get(p)).toBe(v);
        expect(pairs(m.entries())).toEqual([...ref].sort((a, b) => a[0] - b[0]));
      }),
      { seed: 18, numRuns: 300 },
    );
  });

  it('answers as a plain Map does while blocks are emptied, refilled and released in batches', () => {
    // one page in each of 80 blocks, set and deleted at random: more than the 64 emptied blocks
    // left mapped at once, so batches are released with blocks refilled, emptied twice or reused
    const blockPfn = fc.integer({ min: 0, max: 79 }).map((k) => k * 64 + (k % 64));
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), blockPfn), { maxLength: 500, size: 'max' }), (ops) => {
        const m = new PageMap();
        const ref = new Map<number, number>();
        // plain comparisons, not expect: a counterexample is shrunk over thousands of runs
        const agrees = ops.every(([set, pfn], i) => {
          if (set) {
            m.set(pfn, i);
            ref.set(pfn, i);
          } else if (m.delete(pfn) !== ref.delete(pfn)) return false;
          return m.get(pfn) === ref.get(pfn) && m.size === ref.size;
        });
        const want = JSON.stringify([...ref].sort((a, b) => a[0] - b[0]));
        return agrees && JSON.stringify(pairs(m.entries())) === want && JSON.stringify(pairs(m.inRange(0, 80 * 64))) === want;
      }),
      { seed: 19, numRuns: 100 },
    );
  });

  it('keeps thousands of blocks (its storage grows in chunks) and reuses emptied ones', () => {
    const m = new PageMap();
    const ref = new Map<number, number>();
    // one page in each of 3000 blocks, then every other one deleted and others set
    for (let i = 0; i < 3000; i++) {
      m.set(i * 64 + (i % 64), i);
      ref.set(i * 64 + (i % 64), i);
    }
    for (let i = 0; i < 3000; i += 2) {
      expect(m.delete(i * 64 + (i % 64))).toBe(true);
      ref.delete(i * 64 + (i % 64));
    }
    for (let i = 0; i < 1000; i++) {
      m.set(2 ** 40 + i * 64, i + 7);
      ref.set(2 ** 40 + i * 64, i + 7);
    }
    expect(m.size).toBe(ref.size);
    for (const [p, v] of ref) expect(m.get(p)).toBe(v);
    expect(m.get(0)).toBeUndefined();
    expect(pairs(m.inRange(64 * 1000, 64 * 500))).toEqual([...ref].filter(([p]) => p >= 64 * 1000 && p < 64 * 1500).sort((a, b) => a[0] - b[0]));
    expect(pairs(m.entries())).toEqual([...ref].sort((a, b) => a[0] - b[0]));
    m.clear();
    expect(m.size).toBe(0);
    expect(m.get(2 ** 40)).toBeUndefined();
  });

  it('gives each block its entries in ascending order', () => {
    const m = new PageMap();
    for (const p of [70, 65, 127, 64]) m.set(p, p * 2);
    expect(m.inRange(0, 200)).toEqual([64, 128, 65, 130, 70, 140, 127, 254]);
  });

  it('refuses a negative value', () => {
    expect(() => new PageMap().set(1, -1)).toThrow(/non-negative/);
  });
});

describe('PfnList', () => {
  it('settles to the distinct pages ascending, and stays bounded by them', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 3000 }), { maxLength: 5000 }), (pfns) => {
        const l = new PfnList();
        for (const p of pfns) l.add(p);
        const want = [...new Set(pfns)].sort((a, b) => a - b);
        const n = l.settle();
        expect(Array.from({ length: n }, (_, i) => l.at(i))).toEqual(want);
      }),
      { seed: 18, numRuns: 100 },
    );
    const l = new PfnList();
    for (let i = 0; i < 100_000; i++) l.add(i % 7);
    expect(l.size).toBeLessThan(2048);
    expect(l.settle()).toBe(7);
  });

  it('moves another list in and empties it', () => {
    const a = new PfnList();
    const b = new PfnList();
    a.add(5);
    b.add(3);
    b.add(5);
    a.takeFrom(b);
    expect(b.size).toBe(0);
    expect(a.settle()).toBe(2);
    expect([a.at(0), a.at(1)]).toEqual([3, 5]);
  });
});

describe('PfnList runs', () => {
  it('merges two ascending runs, sorts anything else, as the reference does', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(5000), { maxLength: 300 }), fc.array(fc.nat(5000), { maxLength: 300 }), fc.boolean(), (a, b, shuffle) => {
        const runs = shuffle ? [...a, ...b] : [...a.sort((x, y) => x - y), ...b.sort((x, y) => x - y)];
        const l = new PfnList();
        for (const p of runs) l.add(p);
        const n = l.settle();
        expect(Array.from({ length: n }, (_, i) => l.at(i))).toEqual([...new Set(runs)].sort((x, y) => x - y));
      }),
      { seed: 21, numRuns: 200 },
    );
  });
});
