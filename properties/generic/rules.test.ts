/**
 * The generic path's rules, one scenario each, every expected value derived by hand from Linux
 * 6.1.192 (drivers/iommu/dma-iommu.c, drivers/iommu/iommu.c, drivers/iommu/intel/iommu.c,
 * drivers/iommu/intel/dmar.c, drivers/iommu/iova.c; kernel-semantics section 9, which decides):
 *
 *  - iommu_dma_alloc_iova: bus/aperture clamp, SAC (below 4 GiB first) only for PCI devices and
 *    only without forcedac; alloc_iova_fast rounds below 32 granules only, aligns to next_pow2;
 *  - dma_info_to_prot + __domain_mapping: bit 0 (R) on every leaf, W for FROM_DEVICE and
 *    BIDIRECTIONAL, never SNP; iommu_pgsize chunks and superpages;
 *  - iommu_dma_map_sg: the layout pass (granule alignment, boundary pads), one IOVA range,
 *    __iommu_map_sg (one iommu:map per physically contiguous run), __finalise_sg (merging in
 *    unsigned 32-bit arithmetic, trailing entries DMA_MAPPING_ERROR / 0);
 *  - iommu_dma_unmap_sg: one __iommu_dma_unmap from the first segment to the end of the last;
 *  - strict unmap: intel_iommu_tlb_sync → iommu_flush_iotlb_psi → qi_flush_iotlb (IH dropped);
 *  - iommu_dma_alloc → iommu_dma_alloc_remap: one IOVA range, one map per contiguous run.
 *
 * The scenario device is edu-like: PCI 00:02.0 with a 64-bit mask, so its domain is DID 4
 * (q35's 00:00.0 and 00:01.0 are probed first and take 2 and 3; 0 and 1 are reserved), and its
 * IOVA domain reserves the IOAPIC window 0xfee00000-0xfeefffff as every x86 DMA domain does.
 */
import { describe, expect, it } from 'vitest';
import { DMA_MAPPING_ERROR } from '../../kernel/device.js';
import {
  EDU,
  EDU_DID,
  allocCoherent,
  cpuRead,
  dmaOf,
  dmaRead,
  dmaWrite,
  fillHex,
  freeCoherent,
  iotlbDescs,
  logOf,
  mapLine,
  mapPage,
  mapSg,
  patternHex,
  psiLine,
  runSteps,
  setBoundary,
  setMask,
  setMaxSeg,
  traceOf,
  unmap,
  unmapLine,
  walkLeaf,
  type DeviceJson,
  type Run,
} from './helpers.js';

const SID = 0x10; // 00:02.0
/** the recordings' buffer pool: clear of every fixed region of the simulated machine */
const P = 0x3400000;
const PAGE = 4096;

function liveIovas(r: Run): Array<{ pfnLo: number; pfnHi: number }> {
  return r.model.leaks().liveIovas;
}

function sgOf(r: Run, name: string): Array<{ dmaAddress: bigint; dmaLength: number; pagePfn: number; offset: number; length: number }> {
  const m = r.runner.mappings.get(name);
  if (m?.sgt === undefined) throw new Error(`no sg mapping ${name}`);
  return m.sgt.sgl.map((s) => ({ dmaAddress: s.dmaAddress, dmaLength: s.dmaLength, pagePfn: s.pagePfn, offset: s.offset, length: s.length }));
}

function segs(...s: Array<[string, number]>): Array<{ dma: string; len: number }> {
  return s.map(([dma, len]) => ({ dma, len }));
}

// ---------------------------------------------------------------------------------------------
describe('iommu_dma_alloc_iova and alloc_iova_fast (9.3, 9.1.2, 9.1.4)', () => {
  it('a PCI device with a 64-bit mask gets SAC first: top-down from pfn 0xfffff', () => {
    const r = runSteps({ steps: [mapPage('a', P, PAGE, 'to_device'), mapPage('b', P + PAGE, PAGE, 'to_device')] });
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(r.results[1]).toEqual({ ok: true, dma: '0xffffe000' });
  });

  it('rounding only below 32 granules: 31 pages take 32 (aligned to 32), 33 pages take exactly 33 aligned to 64', () => {
    const r31 = runSteps({ steps: [mapPage('a', P, 31 * PAGE, 'to_device')] });
    // (0x100000 - 32) & ~31 = 0xfffe0; the IOVA node spans the rounded 32 pages
    expect(r31.results[0]).toEqual({ ok: true, dma: '0xfffe0000' });
    expect(liveIovas(r31)).toEqual([{ pfnLo: 0xfffe0, pfnHi: 0xfffff }]);

    const r33 = runSteps({ steps: [mapPage('a', P, 33 * PAGE, 'to_device'), unmap('a')] });
    // (0x100000 - 33) & ~63 = 0xfffc0; the node spans 33 pages, 0xfffc0..0xfffe0
    expect(r33.results[0]).toEqual({ ok: true, dma: '0xfffc0000' });
    expect(traceOf(r33, 0)).toEqual([mapLine(0xfffc0000n, BigInt(P), 33 * PAGE)]);
    expect(traceOf(r33, 1)[0]).toBe(unmapLine(0xfffc0000n, 33 * PAGE, 33 * PAGE));
  });

  it('the 33-page IOVA node covers exactly 33 pages', () => {
    const r = runSteps({ steps: [mapPage('a', P, 33 * PAGE, 'to_device')] });
    expect(liveIovas(r)).toEqual([{ pfnLo: 0xfffc0, pfnHi: 0xfffe0 }]);
    // and exactly 33 present 4 KiB leaves, IOVA pfn i → phys pfn P/4096 + i
    const leaves = r.model.presentLeaves(r.model.device('dev'));
    expect(leaves.length).toBe(33);
    expect(leaves[0]).toMatchObject({ iovaPfn: 0xfffc0, physPfn: P / PAGE, pages: 1 });
    expect(leaves[32]).toMatchObject({ iovaPfn: 0xfffe0, physPfn: P / PAGE + 32, pages: 1 });
  });

  it('SAC is for PCI devices only: a non-PCI device with a 64-bit mask starts at the top of the aperture', () => {
    const plat: DeviceJson = { id: 'dev', bdf: '00:03.0', pci: false, dmaMask: 64 };
    const r = runSteps({ devices: [plat], steps: [mapPage('a', P, PAGE, 'to_device'), mapPage('b', P + PAGE, 2 * PAGE, 'to_device')] });
    // limit = min(2^64 - 1, aperture_end 2^39 - 1) → pfn 0x7ffffff
    expect(r.results[0]).toEqual({ ok: true, dma: '0x7ffffff000' });
    // below the cached node: (0x7ffffff - 2) & ~1
    expect(r.results[1]).toEqual({ ok: true, dma: '0x7fffffc000' });
  });

  it('a non-PCI device with a 32-bit mask is limited by the mask alone', () => {
    const plat: DeviceJson = { id: 'dev', bdf: '00:03.0', pci: false, dmaMask: 32 };
    const r = runSteps({ devices: [plat], steps: [mapPage('a', P, PAGE, 'to_device')] });
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
  });

  it('the aperture clamps a 64-bit mask: 2^39 - 1 at aw 39, 2^48 - 1 at aw 48', () => {
    const plat: DeviceJson = { id: 'dev', bdf: '00:03.0', pci: false, dmaMask: 64 };
    const r48 = runSteps({ platform: { agaw: 48 }, devices: [plat], steps: [mapPage('a', P, PAGE, 'to_device')] });
    expect(r48.results[0]).toEqual({ ok: true, dma: '0xfffffffff000' });
    const r39 = runSteps({ devices: [{ ...plat, dmaMask: 40 }], steps: [mapPage('a', P, PAGE, 'to_device')] });
    expect(r39.results[0]).toEqual({ ok: true, dma: '0x7ffffff000' });
  });

  it('forcedac skips SAC for a PCI device', () => {
    const r = runSteps({ platform: { forcedac: true }, steps: [mapPage('a', P, PAGE, 'to_device')] });
    expect(r.results[0]).toEqual({ ok: true, dma: '0x7ffffff000' });
    const r48 = runSteps({ platform: { forcedac: true, agaw: 48 }, steps: [mapPage('a', P, PAGE, 'to_device')] });
    expect(r48.results[0]).toEqual({ ok: true, dma: '0xfffffffff000' });
  });

  it('forcedac changes nothing for a 32-bit mask, and a 30-bit mask starts at 0x3ffff000', () => {
    const r = runSteps({ platform: { forcedac: true }, steps: [setMask('dev', 32), mapPage('a', P, PAGE, 'to_device'), setMask('dev', 30), mapPage('b', P, PAGE, 'to_device')] });
    expect(r.results[1]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(r.results[3]).toEqual({ ok: true, dma: '0x3ffff000' });
  });

  it('a failed SAC attempt falls back to the whole clamped limit', () => {
    // everything below 4 GiB reserved: the SAC try fails, the second alloc_iova_fast searches up to 2^39
    const r = runSteps({ reserved: [{ start: '0x0', end: '0xffffffff' }], steps: [mapPage('a', P, PAGE, 'to_device')] });
    expect(r.results[0]).toEqual({ ok: true, dma: '0x7ffffff000' });
  });

  it('no IOVA space under the mask: the map fails with DMA_MAPPING_ERROR and dma-iommu prints nothing', () => {
    const r = runSteps({ reserved: [{ start: '0x0', end: '0xffffffff' }], steps: [setMask('dev', 32), mapPage('a', P, PAGE, 'to_device')] });
    expect(r.results[1]).toEqual({ ok: false });
    expect(logOf(r, 1)).toEqual([]);
    expect(traceOf(r, 1)).toEqual([]);
  });

  it('an offset into the page stays in the handle, and the range covers every page touched', () => {
    // 0x20 bytes at page offset 0xff0 touch 2 pages: 2 granules at 0xffffe000, handle 0xffffeff0
    const r = runSteps({ steps: [mapPage('a', P + 0xff0, 0x20, 'to_device')] });
    expect(r.results[0]).toEqual({ ok: true, dma: '0xffffeff0' });
    expect(traceOf(r, 0)).toEqual([mapLine(0xffffe000n, BigInt(P), 2 * PAGE)]);
  });
});

// ---------------------------------------------------------------------------------------------
describe('permission bits (dma_info_to_prot, intel_iommu_map, __domain_mapping: 9.4.1, 9.5.2)', () => {
  const steps = [mapPage('to', P, PAGE, 'to_device'), mapPage('from', P + PAGE, PAGE, 'from_device'), mapPage('bi', P + 2 * PAGE, PAGE, 'bidirectional')];

  it('every leaf has bit 0 (R); W only for FROM_DEVICE and BIDIRECTIONAL; never SNP (bit 11)', () => {
    const r = runSteps({ steps });
    expect(walkLeaf(r.model, SID, dmaOf(r.results[0]))).toEqual({ value: BigInt(P) | 1n, level: 1 });
    expect(walkLeaf(r.model, SID, dmaOf(r.results[1]))).toEqual({ value: BigInt(P + PAGE) | 3n, level: 1 });
    expect(walkLeaf(r.model, SID, dmaOf(r.results[2]))).toEqual({ value: BigInt(P + 2 * PAGE) | 3n, level: 1 });
    for (const l of r.model.presentLeaves(r.model.device('dev'))) expect(l.perm & 1).toBe(1);
  });

  it('a FROM_DEVICE buffer is device-readable (the R bit is always set)', () => {
    const r = runSteps({ steps: [mapPage('from', P + PAGE, PAGE, 'from_device'), dmaRead('from', 0, 256)] });
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(P + PAGE, 256) });
  });

  it('a FROM_DEVICE buffer is device-writable, and the CPU sees the bytes', () => {
    const r = runSteps({ steps: [mapPage('from', P + PAGE, PAGE, 'from_device'), dmaWrite('from', 0x10, 0x20, 0x5a), cpuRead(P + PAGE, 0x40)] });
    expect(r.results[1]).toEqual({ ok: true });
    expect(r.results[2]!.data).toBe(patternHex(P + PAGE, 0x10) + fillHex(0x5a, 0x20) + patternHex(P + PAGE + 0x30, 0x10));
  });

  it('a device write to a TO_DEVICE buffer faults with reason 0x05 and the exact 6.1 log lines', () => {
    const r = runSteps({ steps: [mapPage('to', P, PAGE, 'to_device'), dmaWrite('to', 0, 256, 0x5a), cpuRead(P, 16)] });
    expect(r.results[1]).toEqual({ ok: false, fault: { reason: '0x05', type: 'write', addr: '0xfffff000' } });
    expect(logOf(r, 1)).toEqual([
      'DMAR: DRHD: handling fault status reg 2',
      'DMAR: [DMA Write NO_PASID] Request device [00:02.0] fault addr 0xfffff000 [fault reason 0x05] PTE Write access is not set',
    ]);
    // nothing reached memory
    expect(r.results[2]!.data).toBe(patternHex(P, 16));
  });

  it('a TO_DEVICE buffer is device-readable', () => {
    const r = runSteps({ steps: [mapPage('to', P + 0x100, 0x200, 'to_device'), dmaRead('to', 0, 0x200)] });
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff100' });
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(P + 0x100, 0x200) });
  });
});

// ---------------------------------------------------------------------------------------------
describe('iommu_pgsize chunks and superpages (9.4.2, 9.5.2, 9.5.3)', () => {
  const B = 0x10000000; // 2 MiB-aligned buffer

  it('a 4 MiB buffer, 2 MiB-aligned on both sides, is mapped with two 2 MiB leaves and one map event', () => {
    const r = runSteps({ steps: [mapPage('a', B, 0x400000, 'to_device'), unmap('a')] });
    // 1024 pages, aligned to 1024: (0x100000 - 0x400) & ~0x3ff = 0xffc00, above the IOAPIC node
    // [0xfee00, 0xfeeff], so the first candidate stands
    expect(r.results[0]).toEqual({ ok: true, dma: '0xffc00000' });
    expect(traceOf(r, 0)).toEqual([mapLine(0xffc00000n, BigInt(B), 0x400000)]);
    // unmap: one 2M × 2 unmap_pages call, one PSI of 1024 pages (AM 10)
    expect(traceOf(r, 1)).toEqual([unmapLine(0xffc00000n, 0x400000, 0x400000), psiLine(EDU_DID, 0xffc00000n, 10)]);
    expect(walkLeaf(r.model, SID, 0xffc00000n)).toBeNull();
  });

  it('the superpage leaves are in place while mapped', () => {
    const r = runSteps({ steps: [mapPage('a', B, 0x400000, 'to_device')] });
    expect(r.model.presentLeaves(r.model.device('dev'))).toEqual([
      { iovaPfn: 0xffc00, physPfn: B / PAGE, pages: 512, perm: 1 },
      { iovaPfn: 0xffe00, physPfn: B / PAGE + 512, pages: 512, perm: 1 },
    ]);
    // the PS bit (7) and R on the level-2 entry, found by walking the tables in memory
    expect(walkLeaf(r.model, SID, 0xffc00000n)).toEqual({ value: BigInt(B) | 0x80n | 1n, level: 2 });
    expect(walkLeaf(r.model, SID, 0xffe01000n)).toEqual({ value: BigInt(B + 0x200000) | 0x80n | 1n, level: 2 });
  });

  it('1 GiB, 1 GiB-aligned on both sides: one 1G leaf; its unmap is one PSI with AM 18 (= MAMV, still page-selective)', () => {
    const G = 0x80000000; // clear of the coherent, swiotlb and page-table regions
    const r = runSteps({ steps: [mapPage('a', G, 0x40000000, 'to_device'), dmaRead('a', 0x3ffffff0, 16), unmap('a')] });
    // 0x40000 pages aligned to 0x40000: 0xc0000 overlaps the IOAPIC node, so the walk continues
    // below it: (0xfee00 - 0x40000) & ~0x3ffff = 0x80000
    expect(r.results[0]).toEqual({ ok: true, dma: '0x80000000' });
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(G + 0x3ffffff0, 16) });
    expect(traceOf(r, 2)).toEqual([unmapLine(0x80000000n, 0x40000000, 0x40000000), psiLine(EDU_DID, 0x80000000n, 18)]);
  });

  it('the 1G leaf is a level-3 entry with PS set', () => {
    const G = 0x80000000;
    const r = runSteps({ steps: [mapPage('a', G, 0x40000000, 'bidirectional')] });
    expect(walkLeaf(r.model, SID, 0x80000000n)).toEqual({ value: BigInt(G) | 0x80n | 3n, level: 3 });
    expect(r.model.presentLeaves(r.model.device('dev'))).toEqual([{ iovaPfn: 0x80000, physPfn: G / PAGE, pages: 0x40000, perm: 3 }]);
  });

  it('2 MiB + 4 KiB: a 2M chunk then a 4K chunk; unmap syncs the gather when the page size changes', () => {
    const r = runSteps({ steps: [mapPage('a', B, 0x201000, 'to_device'), unmap('a')] });
    // 513 pages aligned to 1024: (0x100000 - 513) & ~0x3ff = 0xffc00
    expect(r.results[0]).toEqual({ ok: true, dma: '0xffc00000' });
    expect(r.model.presentLeaves(r.model.device('dev'))).toEqual([]);
    // __iommu_unmap: 2M×1 gathered; the 4K×1 call has another pgsize, so iommu_iotlb_sync runs
    // inside the loop (PSI of 512 pages, AM 9) before the unmap event, the last PSI after it
    expect(traceOf(r, 1)).toEqual([psiLine(EDU_DID, 0xffc00000n, 9), unmapLine(0xffc00000n, 0x201000, 0x201000), psiLine(EDU_DID, 0xffe00000n, 0)]);
  });
});

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

// ---------------------------------------------------------------------------------------------
describe('strict unmap: iotlb_sync → one PSI (9.4.4, 9.5.5, 9.5.7)', () => {
  it('a 1-page unmap: iommu:unmap then qi_submit "iotlb_inv dmar0: 0x400f2 0xfffff000 0x0 0x0"', () => {
    const r = runSteps({ steps: [mapPage('a', P, PAGE, 'to_device'), unmap('a')] });
    expect(traceOf(r, 1)).toEqual([
      'unmap: IOMMU: iova=0x00000000fffff000 - 0x0000000100000000 size=4096 unmapped_size=4096',
      'qi_submit: iotlb_inv dmar0: 0x400f2 0xfffff000 0x0 0x0',
    ]);
    // and that is the one IOTLB descriptor the hardware processed in the step
    expect(iotlbDescs(r.qi[1]!)).toEqual([[0x400f2n, 0xfffff000n]]);
  });

  it('a 3-page unmap flushes the naturally aligned 4-page block (AM 2)', () => {
    const r = runSteps({ steps: [mapPage('a', P, 3 * PAGE, 'to_device'), unmap('a')] });
    expect(r.results[0]).toEqual({ ok: true, dma: '0xffffc000' });
    expect(traceOf(r, 1)).toEqual([unmapLine(0xffffc000n, 3 * PAGE, 3 * PAGE), 'qi_submit: iotlb_inv dmar0: 0x400f2 0xffffc002 0x0 0x0']);
  });

  it('a sub-page handle unmaps its whole granule', () => {
    const r = runSteps({ steps: [mapPage('a', P + 0x100, 0x200, 'bidirectional'), unmap('a')] });
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff100' });
    expect(traceOf(r, 1)).toEqual([unmapLine(0xfffff000n, PAGE, PAGE), psiLine(EDU_DID, 0xfffff000n, 0)]);
  });

  it('map emits nothing but the map event when caching mode is off (no RWBF on QEMU)', () => {
    const r = runSteps({ steps: [mapPage('a', P, PAGE, 'to_device')] });
    expect(traceOf(r, 0)).toEqual([mapLine(0xfffff000n, BigInt(P), PAGE)]);
    expect(r.qi[0]).toEqual([]);
  });

  it('the domain id follows probe order: 00:02.0 → 4, a second device at 00:03.0 → 5', () => {
    const other: DeviceJson = { id: 'nic', bdf: '00:03.0', pci: true, dmaMask: 64 };
    const r = runSteps({ devices: [EDU, other], steps: [mapPage('a', P, PAGE, 'to_device', 'nic'), unmap('a'), mapPage('b', P, PAGE, 'to_device'), unmap('b')] });
    // separate domains, separate IOVA spaces: both get 0xfffff000
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(r.results[2]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(traceOf(r, 1)[1]).toBe('qi_submit: iotlb_inv dmar0: 0x500f2 0xfffff000 0x0 0x0');
    expect(traceOf(r, 3)[1]).toBe('qi_submit: iotlb_inv dmar0: 0x400f2 0xfffff000 0x0 0x0');
  });

  it('after a strict unmap, the device read faults with reason 0x06 at once', () => {
    const r = runSteps({ steps: [mapPage('a', P, PAGE, 'to_device'), dmaRead('a', 0, 64), unmap('a'), dmaRead('a', 0, 64)] });
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(P, 64) });
    expect(r.results[3]).toEqual({ ok: false, fault: { reason: '0x06', type: 'read', addr: '0xfffff000' } });
    expect(logOf(r, 3)).toEqual([
      'DMAR: DRHD: handling fault status reg 2',
      'DMAR: [DMA Read NO_PASID] Request device [00:02.0] fault addr 0xfffff000 [fault reason 0x06] PTE Read access is not set',
    ]);
  });

  it('the freed IOVA is reused at once (LIFO rcache)', () => {
    const r = runSteps({ steps: [mapPage('a', P, PAGE, 'to_device'), mapPage('b', P + PAGE, PAGE, 'to_device'), unmap('a'), unmap('b'), mapPage('c', P, PAGE, 'to_device'), mapPage('d', P, PAGE, 'to_device')] });
    expect(r.results[4]).toEqual({ ok: true, dma: '0xffffe000' });
    expect(r.results[5]).toEqual({ ok: true, dma: '0xfffff000' });
  });
});

// ---------------------------------------------------------------------------------------------
describe('coherent allocation (iommu_dma_alloc → iommu_dma_alloc_remap, iommu_dma_free: 9.4.8)', () => {
  it('0x5000 → an IOVA aligned to 8 pages, one map event of 20480 over contiguous pages', () => {
    const r = runSteps({ steps: [allocCoherent('c', 0x5000)] });
    // 5 granules rounded to 8, SAC first with the 64-bit coherent mask: (0x100000 - 8) & ~7
    expect(r.results[0]).toEqual({ ok: true, dma: '0xffff8000' });
    const buf = r.runner.mappings.get('c')!.coherent!;
    expect(buf.pfns.length).toBe(5);
    const contiguous = buf.pfns.every((p, i) => p === buf.pfns[0]! + i);
    expect(contiguous).toBe(true);
    expect(traceOf(r, 0)).toEqual([mapLine(0xffff8000n, BigInt(buf.pfns[0]! * PAGE), 20480)]);
  });

  it('the buffer is zeroed and device-readable and -writable', () => {
    const r = runSteps({ steps: [allocCoherent('c', 0x5000), dmaRead('c', 0x4ff0, 16), dmaWrite('c', 0, 8, 0x77), dmaRead('c', 0, 8)] });
    expect(r.results[1]).toEqual({ ok: true, data: fillHex(0, 16) });
    expect(r.results[2]).toEqual({ ok: true });
    expect(r.results[3]).toEqual({ ok: true, data: fillHex(0x77, 8) });
  });

  it('free: one unmap event of the aligned size and one PSI (5 pages → AM 3)', () => {
    const r = runSteps({ steps: [allocCoherent('c', 0x5000), freeCoherent('c')] });
    expect(traceOf(r, 1)).toEqual([unmapLine(0xffff8000n, 0x5000, 0x5000), psiLine(EDU_DID, 0xffff8000n, 3)]);
    expect(r.model.machine.coherentPages.allocatedPages).toBe(0);
  });

  it('the coherent mask, not the streaming mask, limits the IOVA', () => {
    const r = runSteps({ steps: [setMask('dev', 30, 'coherent'), mapPage('a', P, PAGE, 'to_device'), allocCoherent('c', PAGE)] });
    // streaming: 64-bit mask, SAC from the top of 4 GiB
    expect(r.results[1]).toEqual({ ok: true, dma: '0xfffff000' });
    // coherent: limit pfn 0x3ffff, under which nothing is allocated yet
    expect(r.results[2]).toEqual({ ok: true, dma: '0x3ffff000' });
  });
});

// ---------------------------------------------------------------------------------------------
describe('page-table edge cases of the converted driver (9.5.2 switch_to_super_page, 9.5.3)', () => {
  it('a 2 MiB range mapped with 4 KiB pages is unmapped with one 2M chunk; its emptied table is freed after the PSI', () => {
    // phys 0x10001000 is not 2M-aligned: iommu_pgsize maps 512 × 4K at 0xffe00000; unmap's
    // iommu_pgsize(iova, iova, 2M) picks 2M; intel_iommu_unmap finds a level-1 leaf, keeps 2M,
    // domain_unmap lists the level-1 table; the PSI covers 512 pages (AM 9), ih dropped by QI
    const inUse: number[] = [];
    const r = runSteps({ steps: [mapPage('a', 0x10001000, 0x200000, 'to_device'), unmap('a')] }, {}, (_i, model) => {
      inUse.push(model.machine.ptPages.inUse);
    });
    expect(r.results[0]).toEqual({ ok: true, dma: '0xffe00000' });
    expect(r.model.presentLeaves(r.model.device('dev')).length).toBe(0);
    expect(traceOf(r, 1)).toEqual([unmapLine(0xffe00000n, 0x200000, 0x200000), psiLine(EDU_DID, 0xffe00000n, 9)]);
    expect(inUse[1]).toBe(inUse[0]! - 1);
  });

  it('switch_to_super_page: a 2M map over a region whose small table survives frees it with a 512-page PSI first', () => {
    // 64 pages (never cached: order 6) at (0x100000 - 64) & ~63 = 0xfffc0 create the level-1
    // table of [0xffe00, 0xfffff]; its unmap leaves the table (partly covered) and frees the IOVA
    // to the tree; the 2M map then lands at 0xffe00 and finds that table under its level-2 entry
    const inUse: number[] = [];
    const r = runSteps({ steps: [mapPage('a', P, 64 * PAGE, 'to_device'), unmap('a'), mapPage('b', 0x10000000, 0x200000, 'to_device')] }, {}, (_i, model) => {
      inUse.push(model.machine.ptPages.inUse);
    });
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffc0000' });
    expect(r.results[2]).toEqual({ ok: true, dma: '0xffe00000' });
    expect(traceOf(r, 2)).toEqual([psiLine(EDU_DID, 0xffe00000n, 9), mapLine(0xffe00000n, 0x10000000n, 0x200000)]);
    expect(walkLeaf(r.model, SID, 0xffe00000n)).toEqual({ value: 0x10000000n | 0x80n | 1n, level: 2 });
    expect(inUse[2]).toBe(inUse[1]! - 1);
  });

  it('an entry longer than the boundary is not split and crosses it; the pad before it is mapped', () => {
    // mask 0x1fff, [0x1000, 0x3000]: entry 1 pads entry 0 to 0x2000; iova_len 0x5000 → 8 pages
    const r = runSteps({ steps: [setBoundary('dev', 0x1fff), mapSg('s', [[P, 0x1000], [P + 0x8000, 0x3000]], 'to_device')] });
    expect(r.results[1]).toEqual({ ok: true, count: 2, segments: segs(['0xffff8000', 0x1000], ['0xffffa000', 0x3000]) });
    expect(r.model.iovaToPhys(r.model.device('dev'), 0xffff9000n)).toBe(BigInt(P + 0x1000));
    expect(traceOf(r, 1)).toEqual([mapLine(0xffff8000n, BigInt(P), 0x2000), mapLine(0xffffa000n, BigInt(P + 0x8000), 0x3000)]);
  });
});

// ---------------------------------------------------------------------------------------------
describe('failures and per-CPU state', () => {
  it('map_sg without IOVA space: dma_map_sg returns 0, nothing is mapped, the list is restored (__invalidate_sg)', () => {
    const r = runSteps({ reserved: [{ start: '0x0', end: '0xffffffff' }], steps: [setMask('dev', 32), mapSg('s', [[P + 0x80, 0x100], [P + 2 * PAGE, PAGE]], 'to_device')] });
    expect(r.results[1]).toEqual({ ok: false });
    expect(traceOf(r, 1)).toEqual([]);
    expect(sgOf(r, 's')).toEqual([
      { dmaAddress: DMA_MAPPING_ERROR, dmaLength: 0, pagePfn: P / PAGE, offset: 0x80, length: 0x100 },
      { dmaAddress: DMA_MAPPING_ERROR, dmaLength: 0, pagePfn: (P + 2 * PAGE) / PAGE, offset: 0, length: PAGE },
    ]);
    expect(r.model.leaks()).toEqual({ liveIovas: [], presentPtes: [], busySwiotlbSlots: 0, queued: 0 });
  });

  it('rcaches are per CPU: an IOVA freed on CPU 1 is reused by CPU 1, not CPU 0', () => {
    const r = runSteps({
      platform: { cpus: 2 },
      steps: [mapPage('a', P, PAGE, 'to_device', 'dev', 0), unmap('a', 1), mapPage('b', P, PAGE, 'to_device', 'dev', 0), mapPage('c', P, PAGE, 'to_device', 'dev', 1)],
    });
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(r.results[2]).toEqual({ ok: true, dma: '0xffffe000' });
    expect(r.results[3]).toEqual({ ok: true, dma: '0xfffff000' });
  });

  it('dmar_fault shares one ratelimit (burst 10) among the status line, the records and the loop\'s final check', () => {
    // 3 __ratelimit calls per fault: faults 1-3 print both lines, fault 4 only the status line
    const w = dmaWrite('a', 0, 8, 1);
    const r = runSteps({ steps: [mapPage('a', P, PAGE, 'to_device'), w, w, w, w, w] });
    const status = 'DMAR: DRHD: handling fault status reg 2';
    const rec = 'DMAR: [DMA Write NO_PASID] Request device [00:02.0] fault addr 0xfffff000 [fault reason 0x05] PTE Write access is not set';
    expect([1, 2, 3, 4, 5].map((i) => logOf(r, i))).toEqual([[status, rec], [status, rec], [status, rec], [status], []]);
    for (let i = 1; i <= 5; i++) expect(r.results[i]).toEqual({ ok: false, fault: { reason: '0x05', type: 'write', addr: '0xfffff000' } });
  });
});
