/**
 * The generic path's rules, one scenario each, every expected value derived by hand from Linux
 * 6.1.192 (drivers/iommu/dma-iommu.c, drivers/iommu/iommu.c, drivers/iommu/intel/iommu.c,
 * drivers/iommu/intel/dmar.c, drivers/iommu/iova.c; kernel-semantics section 9, which decides).
 *
 * This file: strict unmaps and coherent buffers.
 *
 *  - strict unmap: intel_iommu_tlb_sync → iommu_flush_iotlb_psi → qi_flush_iotlb (IH dropped);
 *  - iommu_dma_alloc → iommu_dma_alloc_remap: one IOVA range, one map per contiguous run.
 *
 * The scenario device is edu-like: PCI 00:02.0 with a 64-bit mask, so its domain is DID 4
 * (q35's 00:00.0 and 00:01.0 are probed first and take 2 and 3; 0 and 1 are reserved), and its
 * IOVA domain reserves the IOAPIC window 0xfee00000-0xfeefffff as every x86 DMA domain does.
 */
import { describe, expect, it } from 'vitest';
import {
  EDU,
  EDU_DID,
  P,
  PAGE,
  allocCoherent,
  dmaRead,
  dmaWrite,
  fillHex,
  freeCoherent,
  iotlbDescs,
  logOf,
  mapLine,
  mapPage,
  patternHex,
  psiLine,
  runSteps,
  setMask,
  traceOf,
  unmap,
  unmapLine,
  type DeviceJson,
} from './helpers.js';

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
