/** The lifecycle workload step: one mapping's whole DMA life, and its arbitrary (generators.ts). */
import fc from 'fast-check';
import type { Dir } from '../scenario.js';
import type { GenOptions } from '../generators.js';
import { dirArb, lifeBufArb, type Buf } from './buffers.js';

/**
 * One mapping's whole DMA lifecycle (kernel-semantics 4.3, 9.4.7, 10.10): CPU writes, map,
 * device reads, device writes, sync_for_cpu, CPU reads, CPU writes, sync_for_device, device
 * reads, device writes again (so the unmap has data of its own to copy back), unmap, CPU reads.
 * `keep` says which of those twelve steps are there: generated all (or nearly all) present, it
 * shrinks toward fewer, so a failure keeps only the steps it needs.
 */
export interface Life {
  k: 'life';
  dev: number;
  /** the kind of device wanted: the first device of that kind takes the mapping */
  untrusted: boolean;
  dir: Dir;
  sg: boolean;
  entries: Buf[];
  fills: [number, number, number];
  /** the device write: the whole buffer, or [at % size, +len) */
  whole: boolean;
  at: number;
  len: number;
  keep: boolean[];
  cpu: number;
}

/** the steps of a lifecycle, in order (indices into Life.keep) */
export const LIFE_STEPS = ['cpu_write', 'map', 'dma_read', 'dma_write', 'sync_for_cpu', 'cpu_read', 'cpu_write', 'sync_for_device', 'dma_read', 'dma_write', 'unmap', 'cpu_read'] as const;

/** present, nearly always; shrinks to absent */
const keepArb = fc.oneof({ withCrossShrink: true }, { weight: 1, arbitrary: fc.constant(false) }, { weight: 40, arbitrary: fc.constant(true) });

export function lifeArb(o: GenOptions): fc.Arbitrary<Life> {
  return fc.record({
    k: fc.constant('life' as const),
    dev: fc.nat(o.maxDevices - 1),
    // untrusted cells need a bounce as well as the device: asked for a little more often
    untrusted: fc.oneof({ weight: 2, arbitrary: fc.constant(false) }, { weight: 3, arbitrary: fc.constant(true) }),
    dir: dirArb,
    sg: fc.boolean(),
    entries: fc.array(lifeBufArb, { minLength: 1, maxLength: 4 }),
    fills: fc.tuple(fc.integer({ min: 1, max: 255 }), fc.integer({ min: 1, max: 255 }), fc.integer({ min: 1, max: 255 })),
    whole: fc.oneof({ withCrossShrink: true }, fc.constant(true), fc.constant(false)),
    at: fc.nat(0xffff),
    len: fc.integer({ min: 1, max: 0x2000 }),
    keep: fc.array(keepArb, { minLength: LIFE_STEPS.length, maxLength: LIFE_STEPS.length }),
    cpu: fc.nat(1),
  });
}
