/**
 * kernel/rbtree.ts: the red-black tree of IOVA ranges iova.c works on.
 *
 * Random insert/remove sequences are replayed against a plain sorted array of ranges (the
 * reference). After every operation the tree must satisfy the red-black invariants (verify()),
 * walk in pfn order, agree with the reference on size, first/last, rb_prev/rb_next, the range
 * containing a pfn (private_find_iova) and the lowest range ending at or above a pfn (what
 * iova_find_limit needs).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RbTree, newNode, type IovaNode } from '../../kernel/rbtree.js';

interface Range {
  lo: number;
  hi: number;
}

type Op = { kind: 'insert'; lo: number; len: number } | { kind: 'remove'; pick: number } | { kind: 'probe'; pfn: number };

const SPACE = 512;

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('insert' as const), lo: fc.integer({ min: 0, max: SPACE - 1 }), len: fc.integer({ min: 1, max: 8 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('remove' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('probe' as const), pfn: fc.integer({ min: 0, max: SPACE + 8 }) }) },
);

/** The reference answer of findContaining: the range holding pfn, by linear scan. */
function refContaining(ref: readonly Range[], pfn: number): Range | undefined {
  return ref.find((r) => r.lo <= pfn && pfn <= r.hi);
}

/** The reference answer of lowestWithHiAtLeast: the first range (in pfn order) with hi >= pfn. */
function refLowestHiAtLeast(ref: readonly Range[], pfn: number): Range | undefined {
  return ref.find((r) => r.hi >= pfn);
}

function asRange(n: IovaNode | null): Range | undefined {
  return n === null ? undefined : { lo: n.pfnLo, hi: n.pfnHi };
}

/** Every structural property, checked against the sorted reference. */
function checkTree(t: RbTree, ref: readonly Range[], nodes: ReadonlyMap<number, IovaNode>): void {
  expect(() => t.verify()).not.toThrow();
  expect(t.size).toBe(ref.length);
  if (t.root !== null) expect(t.root.parent).toBeNull();
  const walk = [...t.inOrder()].map((n) => ({ lo: n.pfnLo, hi: n.pfnHi }));
  expect(walk).toEqual(ref);
  expect(asRange(t.first())).toEqual(ref[0]);
  expect(asRange(t.last())).toEqual(ref[ref.length - 1]);
  // rb_prev / rb_next agree with the neighbours in the reference, and with each other
  const prevs = ref.map((r) => asRange(t.prev(nodes.get(r.lo)!)));
  const nexts = ref.map((r) => asRange(t.next(nodes.get(r.lo)!)));
  expect(prevs).toEqual(ref.map((_, i) => ref[i - 1]));
  expect(nexts).toEqual(ref.map((_, i) => ref[i + 1]));
  const roundTrip = ref.every((r) => {
    const n = nodes.get(r.lo)!;
    const nx = t.next(n);
    return nx === null || t.prev(nx) === n;
  });
  expect(roundTrip).toBe(true);
}

function checkQueries(t: RbTree, ref: readonly Range[], pfn: number): void {
  expect(asRange(t.findContaining(pfn))).toEqual(refContaining(ref, pfn));
  expect(asRange(t.lowestWithHiAtLeast(pfn))).toEqual(refLowestHiAtLeast(ref, pfn));
}

describe('RbTree against a sorted-array reference', () => {
  it('random insert/remove sequences of disjoint ranges keep every invariant', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 120, size: 'max' }), (ops) => {
        const t = new RbTree();
        const ref: Range[] = [];
        const nodes = new Map<number, IovaNode>();
        for (const op of ops) {
          if (op.kind === 'insert') {
            const r = { lo: op.lo, hi: op.lo + op.len - 1 };
            // iova.c only ever inserts ranges that overlap nothing
            if (ref.some((x) => x.lo <= r.hi && r.lo <= x.hi)) continue;
            const n = newNode(r.lo, r.hi);
            t.insert(n);
            nodes.set(r.lo, n);
            ref.push(r);
            ref.sort((a, b) => a.lo - b.lo);
          } else if (op.kind === 'remove') {
            if (ref.length === 0) continue;
            const r = ref.splice(op.pick % ref.length, 1)[0]!;
            const n = nodes.get(r.lo)!;
            t.remove(n);
            nodes.delete(r.lo);
            // rb_erase leaves the erased node unlinked
            expect(n.left).toBeNull();
            expect(n.right).toBeNull();
            expect(n.parent).toBeNull();
          } else {
            checkQueries(t, ref, op.pfn);
          }
          checkTree(t, ref, nodes);
        }
        // every pfn of the space, plus the ends
        for (let pfn = 0; pfn <= SPACE + 8; pfn += 7) checkQueries(t, ref, pfn);
        for (const r of ref) {
          checkQueries(t, ref, r.lo);
          checkQueries(t, ref, r.hi);
          checkQueries(t, ref, r.hi + 1);
        }
      }),
      { seed: 0x5eed01, numRuns: 150 },
    );
  });

  it('ascending, descending and interleaved bulk inserts then removal of every other node stay balanced', () => {
    for (const order of ['up', 'down', 'zigzag'] as const) {
      const t = new RbTree();
      const keys = Array.from({ length: 1000 }, (_, i) => i * 2);
      if (order === 'down') keys.reverse();
      if (order === 'zigzag') keys.sort((a, b) => (a % 4) - (b % 4) || a - b);
      const nodes = new Map<number, IovaNode>();
      for (const k of keys) {
        const n = newNode(k, k);
        nodes.set(k, n);
        t.insert(n);
      }
      const bh = t.verify();
      // a red-black tree of 1000 nodes has height <= 2 log2(1001) < 20, so black height <= 11
      expect(bh).toBeLessThanOrEqual(11);
      for (let k = 0; k < 2000; k += 4) t.remove(nodes.get(k)!);
      expect(() => t.verify()).not.toThrow();
      expect(t.size).toBe(500);
      expect([...t.inOrder()].map((n) => n.pfnLo)).toEqual(Array.from({ length: 500 }, (_, i) => i * 4 + 2));
    }
  });

  it('an empty tree answers null everywhere', () => {
    const t = new RbTree();
    expect(t.first()).toBeNull();
    expect(t.last()).toBeNull();
    expect(t.findContaining(5)).toBeNull();
    expect(t.lowestWithHiAtLeast(0)).toBeNull();
    expect(t.verify()).toBe(1);
    expect([...t.inOrder()]).toEqual([]);
  });

  it('an equal key is left out and the tree unchanged (iova_insert_rbtree WARN_ONs and returns)', () => {
    const t = new RbTree();
    for (const k of [4, 2, 6]) t.insert(newNode(k, k));
    expect(() => t.insert(newNode(6, 9))).not.toThrow();
    expect(t.size).toBe(3);
    expect(t.verify()).toBe(2);
    expect([...t.inOrder()].map((n) => [n.pfnLo, n.pfnHi])).toEqual([
      [2, 2],
      [4, 4],
      [6, 6],
    ]);
  });
});
