/**
 * map_sg on the generic path against an independent transcription of Linux 6.1.192's
 * iommu_dma_map_sg (reference.ts), for random lists: offsets, lengths (sub-page, page multiples,
 * odd sizes), physical adjacency, overlapping entries, max_seg_size (including values below an
 * entry's length, where __finalise_sg's unsigned arithmetic lets segments grow past it) and
 * seg_boundary_mask (including pads). Checked per list: the returned count and segments, every
 * trailing entry (DMA_MAPPING_ERROR / 0), the CPU fields restored, one iommu:map per physically
 * contiguous run, the byte stream the device reads, the present leaves, and the single unmap
 * event and PSI of iommu_dma_unmap_sg. Fixed seed, bounded runs.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DMA_MAPPING_ERROR } from '../../kernel/device.js';
import {
  EDU_DID,
  PAGE,
  dmaRead,
  hx,
  mapLine,
  mapSg,
  patternHex,
  psiLine,
  runSteps,
  setBoundary,
  setMaxSeg,
  traceOf,
  unmap,
  unmapLine,
} from './helpers.js';
import { freshSacIova, refMapSg, type SgIn } from './reference.js';

const POOL = 0x3400000;

const entryArb: fc.Arbitrary<SgIn> = fc
  .record({
    page: fc.integer({ min: 0, max: 63 }),
    offset: fc.oneof(fc.constant(0), fc.constant(0x800), fc.integer({ min: 0, max: PAGE - 1 })),
    length: fc.oneof(fc.constantFrom(PAGE, 2 * PAGE, 3 * PAGE, 0x800), fc.integer({ min: 1, max: 5 * PAGE })),
  })
  .map(({ page, offset, length }) => ({ phys: POOL + page * PAGE + offset, length }));

/** lists where consecutive entries are often physically adjacent (to form runs) */
const listArb: fc.Arbitrary<SgIn[]> = fc.oneof(
  fc.array(entryArb, { minLength: 1, maxLength: 8 }),
  fc
    .record({ start: fc.integer({ min: 0, max: 31 }), lens: fc.array(fc.constantFrom(PAGE, 2 * PAGE, 0x3000), { minLength: 1, maxLength: 6 }) })
    .map(({ start, lens }) => {
      let p = POOL + start * PAGE;
      return lens.map((l) => {
        const e = { phys: p, length: l };
        p += l;
        return e;
      });
    }),
);

const maskArb = fc.constantFrom(0xfffn, 0x1fffn, 0x3fffn, 0x7fffn, 0xffffn, 0xffffffffn);
const maxSegArb = fc.constantFrom(0x800, 0x1000, 0x2000, 0x3000, 0x10000, 0xffffffff);

describe('map_sg against the transcribed 6.1 rules', () => {
  it('count, segments, trailing entries, runs, device byte stream, leaves and unmap all agree', () => {
    fc.assert(
      fc.property(listArb, maskArb, maxSegArb, (list, mask, maxSeg) => {
        const ref = refMapSg(list, mask, maxSeg);
        const total = list.reduce((a, e) => a + e.length, 0);
        const r = runSteps({
          reserved: [],
          steps: [setBoundary('dev', mask), setMaxSeg('dev', maxSeg), mapSg('s', list.map((e) => [e.phys, e.length]), 'bidirectional'), dmaRead('s', 0, total), unmap('s')],
        });
        // the returned count and the first `count` segments
        expect(r.results[2]).toEqual({
          ok: true,
          count: ref.count,
          segments: ref.dma.slice(0, ref.count).map((d) => ({ dma: hx(d.dma), len: d.len })),
        });
        // every entry, trailing ones included, and the CPU side restored
        const sgl = r.runner.mappings.get('s')!.sgt!.sgl;
        expect(sgl.map((s) => ({ dma: s.dmaAddress, len: s.dmaLength }))).toEqual(ref.dma);
        for (let i = ref.count; i < list.length; i++) expect(sgl[i]!.dmaAddress).toBe(DMA_MAPPING_ERROR);
        expect(sgl.map((s) => s.pagePfn * PAGE + s.offset)).toEqual(list.map((e) => e.phys));
        expect(sgl.map((s) => s.length)).toEqual(list.map((e) => e.length));
        // one iommu:map per physically contiguous run, nothing else (no CM)
        expect(traceOf(r, 2)).toEqual(ref.runs.map((x) => mapLine(x.iova, BigInt(x.paddr), x.size)));
        // the device reads the entries' bytes, in order, through the first `count` segments
        expect(r.results[3]).toEqual({ ok: true, data: list.map((e) => patternHex(e.phys, e.length)).join('') });
        // one unmap event from the first segment to the end of the last, then one PSI
        const pages = ref.unmap.size / PAGE;
        const am = Math.log2(pages < 1 ? 1 : 2 ** Math.ceil(Math.log2(pages)));
        expect(traceOf(r, 4)).toEqual([unmapLine(ref.unmap.iova, ref.unmap.size, ref.unmap.size), psiLine(EDU_DID, ref.unmap.iova, am)]);
        expect(r.model.leaks().presentPtes).toEqual([]);
      }),
      { seed: 0x6101920, numRuns: 250 },
    );
  });

  it('while mapped, exactly iova_len bytes of IOVA are backed, starting at the allocation', () => {
    fc.assert(
      fc.property(listArb, maskArb, (list, mask) => {
        const ref = refMapSg(list, mask, 0x10000);
        const r = runSteps({ reserved: [], steps: [setBoundary('dev', mask), mapSg('s', list.map((e) => [e.phys, e.length]), 'to_device')] });
        const leaves = r.model.presentLeaves(r.model.device('dev'));
        expect(leaves.reduce((a, l) => a + l.pages, 0) * PAGE).toBe(ref.iovaLen);
        expect(BigInt(leaves[0]!.iovaPfn) * 4096n).toBe(ref.iova);
      }),
      { seed: 0x6101921, numRuns: 100 },
    );
  });
});

describe('the fresh-domain IOVA the reference uses, against hand-worked values', () => {
  // 6.1 alloc_iova_fast rounds sizes below 32 pages up to a power of two; __alloc_and_insert_iova_range
  // aligns the start to 2^fls(size - 1) and takes the highest fit below pfn 0x100000:
  // 1 -> 0xfffff, 3 -> 4 pages at 0xffffc, 5 -> 8 at 0xffff8, 33 -> 33 pages aligned to 64: 0xfffc0
  it.each([
    [1, 0xfffff000n],
    [3, 0xffffc000n],
    [5, 0xffff8000n],
    [33, 0xfffc0000n],
  ])('%i pages of map_sg land at %s, in the reference and in the model', (pages, want) => {
    expect(freshSacIova(pages)).toBe(want);
    const r = runSteps({ reserved: [], steps: [mapSg('s', [[POOL, pages * PAGE]], 'to_device')] });
    const leaves = r.model.presentLeaves(r.model.device('dev'));
    expect(BigInt(leaves[0]!.iovaPfn) * 4096n).toBe(want);
    expect(leaves.reduce((a, l) => a + l.pages, 0)).toBe(pages);
  });
});

describe('the property is sensitive', () => {
  it('the seeded mergeIgnoresMaxSeg bug makes it fail', () => {
    const out = fc.check(
      fc.property(listArb, maxSegArb, (list, maxSeg) => {
        const ref = refMapSg(list, 0xffffffffn, maxSeg);
        const r = runSteps({ reserved: [], steps: [setMaxSeg('dev', maxSeg), mapSg('s', list.map((e) => [e.phys, e.length]), 'to_device')] }, { mergeIgnoresMaxSeg: true });
        return r.results[1]!.count === ref.count;
      }),
      { seed: 0x6101922, numRuns: 200 },
    );
    expect(out.failed).toBe(true);
  });
});

describe('the reference reproduces the recorded examples (kernel-semantics 9.4.5)', () => {
  it('0x2000 + 0x3000 under max_seg 4096 merge into 0x5000 (unsigned 32-bit wrap)', () => {
    const ref = refMapSg(
      [
        { phys: POOL, length: 0x2000 },
        { phys: POOL + 0x4000, length: 0x3000 },
      ],
      0xffffffffn,
      4096,
    );
    expect(ref.count).toBe(1);
    expect(ref.dma[0]).toEqual({ dma: 0xffff8000n, len: 0x5000 });
  });

  it('boundary 0x3fff with 5 pages gives 0x4000 + 0x1000', () => {
    const ref = refMapSg(
      [0, 2, 4, 6, 8].map((i) => ({ phys: POOL + i * PAGE, length: PAGE })),
      0x3fffn,
      65536,
    );
    expect(ref.dma.slice(0, ref.count)).toEqual([
      { dma: 0xffff8000n, len: 0x4000 },
      { dma: 0xffffc000n, len: 0x1000 },
    ]);
  });
});
