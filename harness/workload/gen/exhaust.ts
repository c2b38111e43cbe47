/** The exhaustion workload's steps (generators.ts, the exhaust-* platforms). */
import fc from 'fast-check';
import type { MaskWhich } from '../scenario.js';
import type { GenOptions, GenStep } from '../generators.js';
import { dirArb, type Buf } from './buffers.js';

/** Page counts around powers of two: 5.10 rounds them all up, 6.1 only those below 32. */
const EXHAUST_PAGES = [1, 2, 3, 5, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 513] as const;

/**
 * The exhaustion workload: maps, lists and coherent buffers of page counts around powers of
 * two, frees, and fills -- many one-page mappings then all unmapped, so the rcache magazines
 * fill and spill into the depot -- on a platform with a small IOVA window.
 */
export function exhaustStepArb(o: GenOptions): fc.Arbitrary<GenStep> {
  const dev = fc.nat(o.maxDevices - 1);
  const cpu = fc.nat(1);
  const pick = fc.nat(15);
  const pages = fc.constantFrom(...EXHAUST_PAGES);
  const buf = fc.record({ slot: fc.nat(3), pages, off: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 0xfff }) }) }).map(
    ({ slot, pages: n, off }): Buf => ({ large: true, slot, off, len: n * 4096 - (off > 0 ? off : 0) }),
  );
  return fc.oneof(
    { weight: 6, arbitrary: fc.record({ k: fc.constant('map_page' as const), dev, buf, dir: dirArb, cpu }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('map_sg' as const), dev, entries: fc.array(buf, { minLength: 1, maxLength: 3 }), dir: dirArb, cpu }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('alloc' as const), dev, size: pages.map((n) => n * 4096), cpu }) },
    { weight: 6, arbitrary: fc.record({ k: fc.constant('unmap' as const), pick, cpu }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('free' as const), pick, cpu }) },
    {
      weight: 3,
      arbitrary: fc.record({ k: fc.constant('fill' as const), dev, n: fc.constantFrom(1, 40, 130, 260), cpu, reverse: fc.boolean(), then: fc.constantFrom(1, 33, 257, 512, 513) }),
    },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('churn' as const), dev, n: fc.integer({ min: 1, max: 8 }), cpu }) },
    { weight: 3, arbitrary: fc.record({ k: fc.constant('mask' as const), dev, bits: fc.constantFrom(30, 32, 64), which: fc.constantFrom<MaskWhich>('both', 'streaming', 'coherent') }) },
    {
      weight: 1,
      arbitrary: fc.record({
        k: fc.constant('access' as const),
        write: fc.boolean(),
        pick,
        where: fc.constantFrom('inside', 'after', 'dead') as fc.Arbitrary<'inside' | 'before' | 'after' | 'dead'>,
        at: fc.nat(0xffff),
        len: fc.integer({ min: 1, max: 256 }),
        fill: fc.integer({ min: 0, max: 255 }),
      }),
    },
  );
}
