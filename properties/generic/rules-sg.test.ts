/**
 * The generic path's rules, one scenario each, every expected value derived by hand from Linux
 * 6.1.192 (drivers/iommu/dma-iommu.c, drivers/iommu/iommu.c, drivers/iommu/intel/iommu.c,
 * drivers/iommu/intel/dmar.c, drivers/iommu/iova.c; kernel-semantics section 9, which decides).
 *
 * This file: scatterlists.
 *
 *  - iommu_dma_map_sg: the layout pass (granule alignment, boundary pads), one IOVA range,
 *    __iommu_map_sg (one iommu:map per physically contiguous run), __finalise_sg (merging in
 *    unsigned 32-bit arithmetic, trailing entries DMA_MAPPING_ERROR / 0);
 *  - iommu_dma_unmap_sg: one __iommu_dma_unmap from the first segment to the end of the last.
 *
 * The scenario device is edu-like: PCI 00:02.0 with a 64-bit mask, so its domain is DID 4
 * (q35's 00:00.0 and 00:01.0 are probed first and take 2 and 3; 0 and 1 are reserved), and its
 * IOVA domain reserves the IOAPIC window 0xfee00000-0xfeefffff as every x86 DMA domain does.
 */
import { describe, expect, it } from 'vitest';
import { DMA_MAPPING_ERROR } from '../../kernel/device.js';
import {
  EDU_DID,
  P,
  PAGE,
  SID,
  dmaRead,
  mapLine,
  mapSg,
  patternHex,
  psiLine,
  runSteps,
  segs,
  setBoundary,
  setMaxSeg,
  sgOf,
  traceOf,
  unmap,
  unmapLine,
} from './helpers.js';

// ---------------------------------------------------------------------------------------------
describe('iommu_dma_map_sg and __finalise_sg (9.4.5)', () => {
  it('page-aligned entries merge: 3 × 4096 in scattered pages → 1 segment of 12288; 3 map events', () => {
    const r = runSteps({ steps: [mapSg('s', [[P, PAGE], [P + 2 * PAGE, PAGE], [P + 4 * PAGE, PAGE]], 'to_device')] });
    // 3 granules rounded to 4: 0xffffc000
    expect(r.results[0]).toEqual({ ok: true, count: 1, segments: segs(['0xffffc000', 12288]) });
    expect(traceOf(r, 0)).toEqual([
      mapLine(0xffffc000n, BigInt(P), PAGE),
      mapLine(0xffffd000n, BigInt(P + 2 * PAGE), PAGE),
      mapLine(0xffffe000n, BigInt(P + 4 * PAGE), PAGE),
    ]);
  });

  it('trailing entries after count hold DMA_MAPPING_ERROR and length 0; CPU fields are restored', () => {
    const r = runSteps({ steps: [mapSg('s', [[P, PAGE], [P + 2 * PAGE, PAGE], [P + 4 * PAGE + 0x10, 0x100]], 'to_device')] });
    // entry 2 has offset 0x10: a new segment at iova + 0x2000 + 0x10
    expect(r.results[0]).toEqual({ ok: true, count: 2, segments: segs(['0xffffc000', 0x2000], ['0xffffe010', 0x100]) });
    const sgl = sgOf(r, 's');
    expect(sgl[2]).toEqual({ dmaAddress: DMA_MAPPING_ERROR, dmaLength: 0, pagePfn: (P + 4 * PAGE) / PAGE, offset: 0x10, length: 0x100 });
    expect(DMA_MAPPING_ERROR).toBe(0xffffffffffffffffn);
    expect(sgl[0]).toMatchObject({ pagePfn: P / PAGE, offset: 0, length: PAGE });
    expect(sgl[1]).toMatchObject({ pagePfn: (P + 2 * PAGE) / PAGE, offset: 0, length: PAGE });
  });

  it('every merged-away entry is DMA_MAPPING_ERROR / 0 (3 entries → 1 segment)', () => {
    const r = runSteps({ steps: [mapSg('s', [[P, PAGE], [P + 2 * PAGE, PAGE], [P + 4 * PAGE, PAGE]], 'to_device')] });
    const sgl = sgOf(r, 's');
    expect(sgl.map((s) => [s.dmaAddress, s.dmaLength])).toEqual([
      [0xffffc000n, 12288],
      [0xffffffffffffffffn, 0],
      [0xffffffffffffffffn, 0],
    ]);
  });

  it('max_seg_size 4096 splits 3 × 4096 into 3 segments', () => {
    const r = runSteps({ steps: [setMaxSeg('dev', 4096), mapSg('s', [[P, PAGE], [P + 2 * PAGE, PAGE], [P + 4 * PAGE, PAGE]], 'to_device')] });
    expect(r.results[1]).toEqual({ ok: true, count: 3, segments: segs(['0xffffc000', 4096], ['0xffffd000', 4096], ['0xffffe000', 4096]) });
  });

  it('max_seg_size 0x2000 with 5 pages → 0x2000, 0x2000, 0x1000', () => {
    const sg: Array<[number, number]> = [0, 2, 4, 6, 8].map((i) => [P + i * PAGE, PAGE]);
    const r = runSteps({ steps: [setMaxSeg('dev', 0x2000), mapSg('s', sg, 'to_device')] });
    // 5 granules rounded to 8: 0xffff8000
    expect(r.results[1]).toEqual({ ok: true, count: 3, segments: segs(['0xffff8000', 0x2000], ['0xffffa000', 0x2000], ['0xffffc000', 0x1000]) });
  });

  it('unsigned 32-bit arithmetic: max 4096 with 0x2000 + 0x3000 → one 0x5000 segment', () => {
    // cur_len 0x2000 > max_len 0x1000; 0x1000 - 0x2000 wraps to 0xfffff000 >= 0x3000: merge
    const r = runSteps({ steps: [setMaxSeg('dev', 4096), mapSg('s', [[P, 0x2000], [P + 0x4000, 0x3000]], 'to_device')] });
    expect(r.results[1]).toEqual({ ok: true, count: 1, segments: segs(['0xffff8000', 0x5000]) });
  });

  it('the seeded mergeIgnoresMaxSeg bug is caught by the max_seg_size rule', () => {
    const r = runSteps({ steps: [setMaxSeg('dev', 4096), mapSg('s', [[P, PAGE], [P + 2 * PAGE, PAGE], [P + 4 * PAGE, PAGE]], 'to_device')] }, { mergeIgnoresMaxSeg: true });
    expect(r.results[1]!.count).not.toBe(3);
  });

  it('seg_boundary_mask 0x1fff with 4 pages → 2 × 0x2000 (no pad: every entry fits before its boundary)', () => {
    const sg: Array<[number, number]> = [0, 2, 4, 6].map((i) => [P + i * PAGE, PAGE]);
    const r = runSteps({ steps: [setBoundary('dev', 0x1fff), mapSg('s', sg, 'to_device')] });
    expect(r.results[1]).toEqual({ ok: true, count: 2, segments: segs(['0xffffc000', 0x2000], ['0xffffe000', 0x2000]) });
  });

  it('seg_boundary_mask 0x3fff with 5 pages → 0x4000 + 0x1000, the second at iova + 0x4000', () => {
    const sg: Array<[number, number]> = [0, 2, 4, 6, 8].map((i) => [P + i * PAGE, PAGE]);
    const r = runSteps({ steps: [setBoundary('dev', 0x3fff), mapSg('s', sg, 'to_device')] });
    expect(r.results[1]).toEqual({ ok: true, count: 2, segments: segs(['0xffff8000', 0x4000], ['0xffffc000', 0x1000]) });
  });

  describe('a boundary pad: [0x3000, 0x2000] with mask 0x3fff (kernel-semantics 7.15b)', () => {
    // layout: entry 0 takes 0x3000; entry 1 (0x2000) would cross 0x4000, pad_len = 0x1000 <
    // 0x2000 - 1, so entry 0 grows to 0x4000; iova_len 0x6000 → 6 granules, aligned to 8
    const A = P;
    const B2 = P + 0x8000;
    const steps = [setBoundary('dev', 0x3fff), mapSg('s', [[A, 0x3000], [B2, 0x2000]], 'bidirectional'), unmap('s')];

    it('the second entry starts at iova + 0x4000', () => {
      const r = runSteps({ steps });
      expect(r.results[1]).toEqual({ ok: true, count: 2, segments: segs(['0xffff8000', 0x3000], ['0xffffc000', 0x2000]) });
    });

    it('the pad page (the physical page after the first entry) is mapped, and the device can reach it', () => {
      const r = runSteps({ steps: steps.slice(0, 2) });
      const leaves = r.model.presentLeaves(r.model.device('dev'));
      expect(leaves.map((l) => [l.iovaPfn, l.physPfn])).toEqual([
        [0xffff8, A / PAGE],
        [0xffff9, A / PAGE + 1],
        [0xffffa, A / PAGE + 2],
        [0xffffb, A / PAGE + 3], // the pad: physical page after the first entry
        [0xffffc, B2 / PAGE],
        [0xffffd, B2 / PAGE + 1],
      ]);
      const read = r.model.machine.deviceRead(SID, 0xffffb000n, 32);
      expect(read.fault).toBeUndefined();
      expect(Buffer.from(read.data).toString('hex')).toBe(patternHex(A + 0x3000, 32));
    });

    it('__iommu_map_sg maps the padded first entry as one run of 0x4000', () => {
      const r = runSteps({ steps: steps.slice(0, 2) });
      expect(traceOf(r, 1)).toEqual([mapLine(0xffff8000n, BigInt(A), 0x4000), mapLine(0xffffc000n, BigInt(B2), 0x2000)]);
    });

    it('unmap_sg unmaps from the first segment to the end of the last: one unmap event, pad included, one PSI', () => {
      const r = runSteps({ steps });
      // gather [0xffff8000, 0xffffdfff]: 6 pages → AM 3
      expect(traceOf(r, 2)).toEqual([unmapLine(0xffff8000n, 0x6000, 0x6000), psiLine(EDU_DID, 0xffff8000n, 3)]);
      expect(r.model.presentLeaves(r.model.device('dev'))).toEqual([]);
    });
  });

  it('sub-page offsets stop merging: [0x100 at offset 0x80, 4096] → [iova + 0x80, 0x100], [iova + 0x1000, 0x1000]', () => {
    const r = runSteps({ steps: [mapSg('s', [[P + 0x80, 0x100], [P + 2 * PAGE, PAGE]], 'to_device'), unmap('s')] });
    expect(r.results[0]).toEqual({ ok: true, count: 2, segments: segs(['0xffffe080', 0x100], ['0xfffff000', 0x1000]) });
    // unmap_sg: start 0xffffe080, end 0x100000000 → __iommu_dma_unmap aligns to 0xffffe000 + 0x2000
    expect(traceOf(r, 1)).toEqual([unmapLine(0xffffe000n, 0x2000, 0x2000), psiLine(EDU_DID, 0xffffe000n, 1)]);
  });

  it('iommu:map events: one per physically contiguous run, in list order', () => {
    // entries 0 and 1 are physically adjacent, entry 2 is not
    const r = runSteps({ steps: [mapSg('s', [[P, PAGE], [P + PAGE, PAGE], [P + 8 * PAGE, PAGE]], 'to_device')] });
    expect(r.results[0]).toEqual({ ok: true, count: 1, segments: segs(['0xffffc000', 0x3000]) });
    expect(traceOf(r, 0)).toEqual([mapLine(0xffffc000n, BigInt(P), 0x2000), mapLine(0xffffe000n, BigInt(P + 8 * PAGE), PAGE)]);
  });

  it('the device reads the byte stream of the entries across merged segments', () => {
    const r = runSteps({ steps: [mapSg('s', [[P, PAGE], [P + 2 * PAGE, PAGE]], 'to_device'), dmaRead('s', PAGE - 8, 16)] });
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(P + PAGE - 8, 8) + patternHex(P + 2 * PAGE, 8) });
  });
});
