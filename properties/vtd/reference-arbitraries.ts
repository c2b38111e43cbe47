/**
 * The operations reference.property.test.ts generates: maps, unmaps and 2 MiB maps with the
 * invalidation each is followed by, device reads and writes aimed at the region (or snapped to a
 * mapped page), and property B's single unflushed change of a cached page.
 */
import fc from 'fast-check';
import { PAGE } from './helpers.js';
import { REGION, SP_BASE, SP_PHYS, SP_SPAN, type InvKind, type Op, type Perm } from './reference-model.js';

export const permArb = fc.oneof(
  { arbitrary: fc.constant<Perm>(3), weight: 3 },
  { arbitrary: fc.constant<Perm>(1), weight: 2 },
  { arbitrary: fc.constant<Perm>(2), weight: 1 },
);
const invArb = fc.oneof(
  { arbitrary: fc.constant<InvKind>('psi'), weight: 6 },
  { arbitrary: fc.constant<InvKind>('dsi'), weight: 1 },
  { arbitrary: fc.constant<InvKind>('global'), weight: 1 },
  { arbitrary: fc.constant<InvKind>('none'), weight: 2 },
);
/** pfns of the 4 KiB region, biased to its first 16 pages so that accesses meet mappings */
export const regionPfn = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 15 }), weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: REGION - 1 }), weight: 1 },
);

export const mapArb = fc.record({
  op: fc.constant('map' as const),
  pfn: regionPfn,
  count: fc.integer({ min: 1, max: 4 }),
  perm: permArb,
  phys: fc.integer({ min: 0, max: 63 }),
  inv: invArb,
});
const unmapArb = fc.record({
  op: fc.constant('unmap' as const),
  pfn: regionPfn,
  count: fc.integer({ min: 1, max: 4 }),
  inv: invArb,
});
const map2mArb = fc.record({
  op: fc.constant('map2m' as const),
  perm: permArb,
  phys: fc.constantFrom(...SP_PHYS),
  inv: invArb,
});
const unmap2mArb = fc.record({ op: fc.constant('unmap2m' as const), inv: invArb });
/** access targets: the 4 KiB region and one past it, or a page of the superpage slot */
const accessPfn = fc.oneof(
  { arbitrary: regionPfn, weight: 6 },
  { arbitrary: fc.constant(REGION), weight: 1 },
  { arbitrary: fc.integer({ min: 0, max: 3 }).map((k) => SP_BASE + k), weight: 1 },
  { arbitrary: fc.integer({ min: 0, max: SP_SPAN - 1 }).map((k) => SP_BASE + k), weight: 1 },
);
const readArb = fc.record({
  op: fc.constant('read' as const),
  pfn: accessPfn,
  snap: fc.boolean(),
  off: fc.integer({ min: 0, max: PAGE - 1 }),
  len: fc.integer({ min: 1, max: 256 }),
  times: fc.integer({ min: 1, max: 2 }),
});
const writeArb = fc.record({
  op: fc.constant('write' as const),
  pfn: accessPfn,
  snap: fc.boolean(),
  off: fc.integer({ min: 0, max: PAGE - 1 }),
  len: fc.integer({ min: 1, max: 64 }),
  value: fc.integer({ min: 0, max: 255 }),
});

export const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: mapArb, weight: 4 },
  { arbitrary: unmapArb, weight: 2 },
  { arbitrary: map2mArb, weight: 1 },
  { arbitrary: unmap2mArb, weight: 1 },
  { arbitrary: readArb, weight: 9 },
  { arbitrary: writeArb, weight: 5 },
);

/** a run: a few maps to start from, then any operations */
export const runArb: fc.Arbitrary<Op[]> = fc
  .tuple(fc.array(mapArb, { minLength: 2, maxLength: 6, size: 'max' }), fc.array(opArb, { minLength: 1, maxLength: 40, size: 'max' }))
  .map(([warm, ops]) => [...warm, ...ops]);

// ---------------------------------------------------------------- property B

type StaleChange = { kind: 'unmap' } | { kind: 'remap'; perm: Perm; phys: number };

export const staleArb = fc.record({
  prefix: runArb,
  p: regionPfn,
  oldPerm: fc.constantFrom<Perm>(1, 3),
  oldPhys: fc.integer({ min: 0, max: 63 }),
  change: fc.oneof(
    fc.constant<StaleChange>({ kind: 'unmap' }),
    fc.record({ kind: fc.constant('remap' as const), perm: permArb, phys: fc.integer({ min: 0, max: 63 }) }),
  ),
  middle: fc.array(opArb, { maxLength: 15, size: 'max' }),
  staleWrite: fc.record({ off: fc.integer({ min: 0, max: PAGE - 64 }), len: fc.integer({ min: 1, max: 64 }), value: fc.integer({ min: 0, max: 255 }) }),
  final: fc.oneof(
    fc.record({ kind: fc.constant('psi' as const), am: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant('dsi' as const), am: fc.constant(0) }),
    fc.record({ kind: fc.constant('global' as const), am: fc.constant(0) }),
  ),
});
