/**
 * The buffers generated workloads map (generators.ts): where they lie, and the arbitraries of
 * single buffers, scatterlists and lifecycle buffers. Moved here from generators.ts as they were:
 * the arbitraries, their order and weights decide every generated value (replay tokens).
 */
import fc from 'fast-check';
import type { Dir } from '../scenario.js';

/** Buffers live in 128 KiB slots from 16 MiB, and 2 MiB-aligned areas from 512 MiB (superpages). */
export const SMALL_BASE = 0x100_0000;
export const SMALL_SLOT = 0x2_0000;
export const SMALL_SLOTS = 48;
export const LARGE_BASE = 0x2000_0000;
export const LARGE_SLOT = 0x40_0000;

/** A buffer: a slot, an offset in it and a length (phys computed at normalisation). */
export interface Buf {
  large: boolean;
  slot: number;
  off: number;
  len: number;
}

export const dirArb = fc.constantFrom<Dir>('to_device', 'from_device', 'bidirectional');

/** sizes weighted toward the interesting branches: sub-page, page-exact, multi-page, 2 MiB */
export const smallBufArb: fc.Arbitrary<Buf> = fc.record({
  large: fc.constant(false),
  slot: fc.nat(SMALL_SLOTS - 1),
  off: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.integer({ min: 1, max: 0xfff }) }, { weight: 1, arbitrary: fc.integer({ min: 0x1000, max: 0x8000 }) }),
  len: fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(4096, 8192, 12288, 16384, 65536) },
    { weight: 3, arbitrary: fc.integer({ min: 1, max: 4096 }) },
    { weight: 2, arbitrary: fc.integer({ min: 4097, max: 0x10000 }) },
  ),
});

const largeBufArb: fc.Arbitrary<Buf> = fc.record({
  large: fc.constant(true),
  slot: fc.nat(3),
  off: fc.constantFrom(0, 0, 0x1000),
  len: fc.constantFrom(0x20_0000, 0x20_0000 + 0x3000, 0x40_0000 - 0x1000),
});

export const bufArb: fc.Arbitrary<Buf> = fc.oneof({ weight: 8, arbitrary: smallBufArb }, { weight: 2, arbitrary: largeBufArb });

/**
 * sg entries: scattered pieces, contiguous runs, the same page twice. Contiguous runs of whole
 * pages weigh most: that is how i915 builds its lists, and what 6.1 merges into fewer segments.
 */
export const sgEntriesArb: fc.Arbitrary<Buf[]> = fc.oneof(
  { weight: 2, arbitrary: fc.array(smallBufArb, { minLength: 1, maxLength: 6 }) },
  {
    weight: 3,
    arbitrary: fc.record({ slot: fc.nat(SMALL_SLOTS - 1), n: fc.integer({ min: 2, max: 6 }), len: fc.constantFrom(4096, 8192, 2048) }).map(({ slot, n, len }) =>
      Array.from({ length: n }, (_, i) => ({ large: false, slot, off: i * len, len })),
    ),
  },
  {
    weight: 1,
    arbitrary: fc.record({ slot: fc.nat(SMALL_SLOTS - 1), half: fc.constantFrom(0x400, 0x800) }).map(({ slot, half }) => [
      { large: false, slot, off: 0, len: half },
      { large: false, slot, off: half, len: half },
    ]),
  },
);

/**
 * Lifecycle buffers: sub-page, unaligned multi-page, page-aligned, several in one bounce-slot
 * class (2049..4096 bytes: two 2 KiB slots), and over swiotlb's largest mapping (256 KiB).
 */
export const lifeBufArb: fc.Arbitrary<Buf> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ large: fc.constant(false), slot: fc.nat(SMALL_SLOTS - 1), off: fc.integer({ min: 0, max: 0xfff }), len: fc.integer({ min: 1, max: 4096 }) }) },
  { weight: 3, arbitrary: fc.record({ large: fc.constant(false), slot: fc.nat(SMALL_SLOTS - 1), off: fc.integer({ min: 0, max: 0xfff }), len: fc.integer({ min: 4097, max: 0x5000 }) }) },
  { weight: 2, arbitrary: fc.record({ large: fc.constant(false), slot: fc.nat(SMALL_SLOTS - 1), off: fc.constant(0), len: fc.constantFrom(4096, 8192) }) },
  { weight: 2, arbitrary: fc.record({ large: fc.constant(false), slot: fc.nat(SMALL_SLOTS - 1), off: fc.integer({ min: 0, max: 0xfff }), len: fc.integer({ min: 2049, max: 4096 }) }) },
  { weight: 1, arbitrary: fc.record({ large: fc.constant(true), slot: fc.nat(3), off: fc.integer({ min: 1, max: 0xfff }), len: fc.integer({ min: 0x4_0001, max: 0x4_0800 }) }) },
);

/** a list made of whole pages, as i915 builds its lists */
export function wholePages(entries: ReadonlyArray<{ phys: number; length: number }>): boolean {
  return entries.every((e) => e.phys % 4096 === 0 && e.length % 4096 === 0);
}

export function bufPhys(b: Buf): { phys: number; length: number } {
  const base = b.large ? LARGE_BASE + b.slot * LARGE_SLOT : SMALL_BASE + b.slot * SMALL_SLOT;
  return { phys: base + b.off, length: b.len };
}
