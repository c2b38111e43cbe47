/**
 * The generic path's rules, one scenario each, every expected value derived by hand from Linux
 * 6.1.192 (drivers/iommu/dma-iommu.c, drivers/iommu/iommu.c, drivers/iommu/intel/iommu.c,
 * drivers/iommu/intel/dmar.c, drivers/iommu/iova.c; kernel-semantics section 9, which decides).
 *
 * This file: IOVA allocation and what fails.
 *
 *  - iommu_dma_alloc_iova: bus/aperture clamp, SAC (below 4 GiB first) only for PCI devices and
 *    only without forcedac; alloc_iova_fast rounds below 32 granules only, aligns to next_pow2;
 *  - failures and per-CPU state: no IOVA space for a list, per-CPU rcaches, dmar_fault's
 *    ratelimit.
 *
 * The scenario device is edu-like: PCI 00:02.0 with a 64-bit mask, so its domain is DID 4
 * (q35's 00:00.0 and 00:01.0 are probed first and take 2 and 3; 0 and 1 are reserved), and its
 * IOVA domain reserves the IOAPIC window 0xfee00000-0xfeefffff as every x86 DMA domain does.
 */
import { describe, expect, it } from 'vitest';
import { DMA_MAPPING_ERROR } from '../../kernel/device.js';
import {
  P,
  PAGE,
  dmaWrite,
  liveIovas,
  logOf,
  mapLine,
  mapPage,
  mapSg,
  runSteps,
  setMask,
  sgOf,
  traceOf,
  unmap,
  unmapLine,
  type DeviceJson,
} from './helpers.js';

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
