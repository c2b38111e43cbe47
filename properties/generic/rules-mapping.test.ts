/**
 * The generic path's rules, one scenario each, every expected value derived by hand from Linux
 * 6.1.192 (drivers/iommu/dma-iommu.c, drivers/iommu/iommu.c, drivers/iommu/intel/iommu.c,
 * drivers/iommu/intel/dmar.c, drivers/iommu/iova.c; kernel-semantics section 9, which decides).
 *
 * This file: what the page tables get.
 *
 *  - dma_info_to_prot + __domain_mapping: bit 0 (R) on every leaf, W for FROM_DEVICE and
 *    BIDIRECTIONAL, never SNP; iommu_pgsize chunks and superpages;
 *  - the converted driver's edge cases: switch_to_super_page, unmapping 4 KiB pages in one
 *    2 MiB chunk, an entry longer than the segment boundary.
 *
 * The scenario device is edu-like: PCI 00:02.0 with a 64-bit mask, so its domain is DID 4
 * (q35's 00:00.0 and 00:01.0 are probed first and take 2 and 3; 0 and 1 are reserved), and its
 * IOVA domain reserves the IOAPIC window 0xfee00000-0xfeefffff as every x86 DMA domain does.
 */
import { describe, expect, it } from 'vitest';
import {
  EDU_DID,
  P,
  PAGE,
  SID,
  cpuRead,
  dmaOf,
  dmaRead,
  dmaWrite,
  fillHex,
  logOf,
  mapLine,
  mapPage,
  mapSg,
  patternHex,
  psiLine,
  runSteps,
  segs,
  setBoundary,
  traceOf,
  unmap,
  unmapLine,
  walkLeaf,
} from './helpers.js';

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
