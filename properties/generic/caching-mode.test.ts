/**
 * Caching mode on the generic path (Linux 6.1.192; kernel-semantics 9.5.4, 9.5.8, 9.2.1).
 *
 * With cap CM set, QEMU's IOMMU may cache not-present entries, so every new mapping must be
 * followed by an invalidation: the core ends iommu_map / iommu_map_sg with iotlb_sync_map, which
 * VT-d turns into one page-selective flush (intel_iommu_iotlb_sync_map → __mapping_notify_one →
 * iommu_flush_iotlb_psi(..., map 1)). Without it (the seeded { noIotlbSyncMap } bug, c588072bba6b
 * before 933fcd01e97e's callback existed) the first access to a fresh IOVA faults.
 *
 * intel_iommu_init also calls iommu_set_dma_strict() when any unit has CM ("IOMMU batching
 * disallowed due to virtualization"), after the command line was parsed, so CM forces strict
 * even when iommu.strict=0.
 */
import { describe, expect, it } from 'vitest';
import {
  EDU_DID,
  FQ_TIMEOUT,
  P,
  PAGE,
  dmaRead,
  iotlbDescs,
  logOf,
  mapLine,
  mapPage,
  mapSg,
  patternHex,
  psiLine,
  runSteps,
  traceOf,
  unmap,
  unmapLine,
} from './helpers.js';

const CM = { cachingMode: true, strict: false } as const;

describe('iotlb_sync_map under caching mode', () => {
  const steps = [mapPage('a', P, PAGE, 'to_device'), dmaRead('a', 0, 64)];

  it('a device read right after map_page succeeds', () => {
    const r = runSteps({ platform: CM, steps });
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(P, 64) });
  });

  it('because map_page issued a PSI for the new page, after the map event', () => {
    const r = runSteps({ platform: CM, steps });
    expect(traceOf(r, 0)).toEqual([mapLine(0xfffff000n, BigInt(P), PAGE), psiLine(EDU_DID, 0xfffff000n, 0)]);
    expect(iotlbDescs(r.qi[0]!)).toEqual([[0x400f2n, 0xfffff000n]]);
  });

  it('with the seeded noIotlbSyncMap bug the same read faults with reason 0x06', () => {
    const r = runSteps({ platform: CM, steps }, { noIotlbSyncMap: true });
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(traceOf(r, 0)).toEqual([mapLine(0xfffff000n, BigInt(P), PAGE)]);
    expect(r.results[1]).toEqual({ ok: false, fault: { reason: '0x06', type: 'read', addr: '0xfffff000' } });
    expect(logOf(r, 1)).toEqual([
      'DMAR: DRHD: handling fault status reg 2',
      'DMAR: [DMA Read NO_PASID] Request device [00:02.0] fault addr 0xfffff000 [fault reason 0x06] PTE Read access is not set',
    ]);
  });

  it('without caching mode the seeded bug changes nothing (no RWBF on QEMU: nothing to flush)', () => {
    const r = runSteps({ steps }, { noIotlbSyncMap: true });
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(P, 64) });
  });

  it('a 3-page map flushes the aligned 4-page block (AM 2), as the recording (cm) shows', () => {
    const r = runSteps({ platform: CM, steps: [mapPage('a', P, 3 * PAGE, 'to_device')] });
    expect(r.results[0]).toEqual({ ok: true, dma: '0xffffc000' });
    expect(traceOf(r, 0)).toEqual([mapLine(0xffffc000n, BigInt(P), 3 * PAGE), psiLine(EDU_DID, 0xffffc000n, 2)]);
  });

  it('map_sg: one map event per run, then one PSI for the whole mapped length', () => {
    // 0x2000 + 0x3000 in separate places: 5 granules at 0xffff8000 (8-aligned); PSI over 5 pages → AM 3
    const r = runSteps({ platform: CM, steps: [mapSg('s', [[P, 0x2000], [P + 0x4000, 0x3000]], 'to_device'), dmaRead('s', 0x1ff8, 16)] });
    expect(r.results[0]).toEqual({ ok: true, count: 1, segments: [{ dma: '0xffff8000', len: 0x5000 }] });
    expect(traceOf(r, 0)).toEqual([mapLine(0xffff8000n, BigInt(P), 0x2000), mapLine(0xffffa000n, BigInt(P + 0x4000), 0x3000), psiLine(EDU_DID, 0xffff8000n, 3)]);
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(P + 0x1ff8, 8) + patternHex(P + 0x4000, 8) });
  });

  it('map_sg with the seeded bug: the first read of the fresh range faults', () => {
    const r = runSteps({ platform: CM, steps: [mapSg('s', [[P, 0x2000], [P + 0x4000, 0x3000]], 'to_device'), dmaRead('s', 0, 16)] }, { noIotlbSyncMap: true });
    expect(r.results[1]).toEqual({ ok: false, fault: { reason: '0x06', type: 'read', addr: '0xffff8000' } });
  });

  it('coherent allocations get their PSI too (iommu_map_sg_atomic ends with iotlb_sync_map)', () => {
    const r = runSteps({ platform: CM, steps: [{ op: 'alloc_coherent', dev: 'dev', size: PAGE, as: 'c' }, dmaRead('c', 0, 8)] });
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(traceOf(r, 0)[1]).toBe(psiLine(EDU_DID, 0xfffff000n, 0));
    expect(r.results[1]).toEqual({ ok: true, data: '0000000000000000' });
  });
});

describe('caching mode forces strict (iommu_set_dma_strict from intel_iommu_init)', () => {
  it('logs "DMAR: IOMMU batching disallowed due to virtualization" at set-up, once', () => {
    const r = runSteps({ platform: CM, steps: [] });
    expect(logOf(r, -1).filter((l) => l === 'DMAR: IOMMU batching disallowed due to virtualization')).toHaveLength(1);
    const noCm = runSteps({ platform: { strict: false }, steps: [] });
    expect(logOf(noCm, -1)).not.toContain('DMAR: IOMMU batching disallowed due to virtualization');
  });

  it('even with strict false: an unmap issues its PSI at once, and a read after it faults', () => {
    const r = runSteps({ platform: CM, steps: [mapPage('a', P, PAGE, 'to_device'), dmaRead('a', 0, 64), unmap('a'), dmaRead('a', 0, 64)] });
    expect(traceOf(r, 2)).toEqual([unmapLine(0xfffff000n, PAGE, PAGE), psiLine(EDU_DID, 0xfffff000n, 0)]);
    expect(r.results[3]).toEqual({ ok: false, fault: { reason: '0x06', type: 'read', addr: '0xfffff000' } });
    expect(r.model.leaks().queued).toBe(0);
  });

  it('no flush queue: the freed IOVA is reused at once and a timeout flushes nothing', () => {
    const r = runSteps({ platform: CM, steps: [mapPage('a', P, PAGE, 'to_device'), unmap('a'), mapPage('b', P, PAGE, 'to_device'), FQ_TIMEOUT] });
    expect(r.results[2]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(traceOf(r, 3)).toEqual([]);
  });

  it('the context entry is installed with a device-selective context flush (DID 0) and a DSI for the domain', () => {
    const r = runSteps({ platform: CM, steps: [] });
    const setup = r.model.machine.trace.events.filter((e) => e.step === -1 && e.event === 'qi_submit').map((e) => e.text);
    // cc_inv: FM 0, SID 0x10 (00:02.0) << 32, DID 0, device granularity (3) << 4, type 1
    const cc = setup.indexOf('cc_inv dmar0: 0x1000000031 0x0 0x0 0x0');
    expect(cc).toBeGreaterThanOrEqual(0);
    expect(setup[cc + 1]).toBe('iotlb_inv dmar0: 0x400e2 0x0 0x0 0x0');
  });
});
