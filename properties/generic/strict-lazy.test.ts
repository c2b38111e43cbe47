/**
 * Strict and lazy invalidation on the generic path (Linux 6.1.192; kernel-semantics 9.2, 9.4.4,
 * 9.5.5, 9.5.6).
 *
 * Strict (IOMMU_DOMAIN_DMA): __iommu_dma_unmap syncs the gather at once (one PSI), then frees the
 * IOVA to the rcache. Lazy (IOMMU_DOMAIN_DMA_FQ, no caching mode): the gather is "queued", so
 * intel_iommu_unmap does not gather and nothing is flushed at unmap; the IOVA goes to the
 * cookie's flush queue and is freed only after fq_flush_iotlb (intel_flush_iotlb_all: one
 * domain-selective flush, "iotlb_inv dmar0: 0x400e2 0x0 0x0 0x0") — from the 10 ms timer, or at
 * once when the ring (256 entries, 255 usable) is full. Until then a translation the device
 * already has cached in the IOTLB keeps working.
 */
import { describe, expect, it } from 'vitest';
import {
  EDU_DID,
  FQ_TIMEOUT,
  P,
  PAGE,
  dmaRead,
  dmaWrite,
  dsiLine,
  iotlbDescs,
  mapLine,
  mapPage,
  mapSg,
  patternHex,
  runSteps,
  traceOf,
  unmap,
  unmapLine,
  type StepJson,
} from './helpers.js';

const LAZY = { strict: false } as const;
const FAULT_06 = { ok: false, fault: { reason: '0x06', type: 'read', addr: '0xfffff000' } };

describe('strict', () => {
  it('a read after unmap faults at once (PTE cleared and the PSI flushed the cached translation)', () => {
    const r = runSteps({ steps: [mapPage('a', P, PAGE, 'to_device'), dmaRead('a', 0, 64), unmap('a'), dmaRead('a', 0, 64)] });
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(P, 64) });
    expect(r.results[3]).toEqual(FAULT_06);
  });

  it('a write after unmap faults too (reason 0x05: no W in the cleared entry)', () => {
    const r = runSteps({ steps: [mapPage('a', P, PAGE, 'bidirectional'), dmaWrite('a', 0, 8, 1), unmap('a'), dmaWrite('a', 0, 8, 2)] });
    expect(r.results[1]).toEqual({ ok: true });
    expect(r.results[3]).toEqual({ ok: false, fault: { reason: '0x05', type: 'write', addr: '0xfffff000' } });
  });

  it('the seeded noIotlbSync bug: a strict unmap leaves the IOTLB stale and the read after unmap succeeds', () => {
    const steps = [mapPage('a', P, PAGE, 'to_device'), dmaRead('a', 0, 64), unmap('a'), dmaRead('a', 0, 64)];
    const r = runSteps({ steps }, { noIotlbSync: true });
    expect(traceOf(r, 2)).toEqual([unmapLine(0xfffff000n, PAGE, PAGE)]);
    expect(iotlbDescs(r.qi[2]!)).toEqual([]);
    expect(r.results[3]).toEqual({ ok: true, data: patternHex(P, 64) });
  });
});

describe('lazy (strict false, no caching mode): the flush queue', () => {
  const steps: StepJson[] = [
    mapPage('a', P, PAGE, 'to_device'), // 0
    dmaRead('a', 0, 64), // 1: the translation is now in the IOTLB
    unmap('a'), // 2: PTE cleared, IOVA queued, no flush
    dmaRead('a', 0, 64), // 3: stale IOTLB hit
    mapPage('b', P + PAGE, PAGE, 'to_device'), // 4: the queued IOVA is not reusable yet
    FQ_TIMEOUT, // 5: the timer fires: one DSI, the queue is freed
    dmaRead('a', 0, 64), // 6: now it faults
    mapPage('c', P + 2 * PAGE, PAGE, 'to_device'), // 7: the freed IOVA comes back
  ];

  it('no qi_submit at unmap: only the unmap event', () => {
    const r = runSteps({ platform: LAZY, steps });
    expect(traceOf(r, 2)).toEqual([unmapLine(0xfffff000n, PAGE, PAGE)]);
    expect(r.qi[2]).toEqual([]);
  });

  it('a read of a cached translation still succeeds after unmap', () => {
    const r = runSteps({ platform: LAZY, steps });
    expect(r.results[3]).toEqual({ ok: true, data: patternHex(P, 64) });
  });

  it('the IOVA is not reused before the flush', () => {
    const r = runSteps({ platform: LAZY, steps });
    expect(r.results[4]).toEqual({ ok: true, dma: '0xffffe000' });
    expect(traceOf(r, 4)).toEqual([mapLine(0xffffe000n, BigInt(P + PAGE), PAGE)]);
  });

  it('the timer flush is one DSI "iotlb_inv dmar0: 0x400e2 0x0 0x0 0x0"', () => {
    const r = runSteps({ platform: LAZY, steps });
    expect(traceOf(r, 5)).toEqual([dsiLine(EDU_DID)]);
    expect(dsiLine(EDU_DID)).toBe('qi_submit: iotlb_inv dmar0: 0x400e2 0x0 0x0 0x0');
    expect(iotlbDescs(r.qi[5]!)).toEqual([[0x400e2n, 0n]]);
  });

  it('after the flush the read faults with reason 0x06', () => {
    const r = runSteps({ platform: LAZY, steps });
    expect(r.results[6]).toEqual(FAULT_06);
  });

  it('after the flush the IOVA is free again (to the rcache, LIFO)', () => {
    const r = runSteps({ platform: LAZY, steps });
    expect(r.results[7]).toEqual({ ok: true, dma: '0xfffff000' });
  });

  it('a translation never cached faults at once even in lazy mode (the table walk sees the cleared PTE)', () => {
    const r = runSteps({ platform: LAZY, steps: [mapPage('a', P, PAGE, 'to_device'), unmap('a'), dmaRead('a', 0, 64)] });
    expect(r.results[2]).toEqual(FAULT_06);
  });

  it('no timeout step, no flush: steps alone do not move the clock by 10 ms', () => {
    const r = runSteps({ platform: LAZY, steps: [mapPage('a', P, PAGE, 'to_device'), dmaRead('a', 0, 8), unmap('a'), dmaRead('a', 0, 8), dmaRead('a', 0, 8), dmaRead('a', 0, 8)] });
    for (let i = 2; i < 6; i++) expect(r.qi[i]).toEqual([]);
    expect(r.results[5]).toEqual({ ok: true, data: patternHex(P, 8) });
    expect(r.model.leaks().queued).toBe(1);
  });

  it('a timeout with nothing queued flushes nothing (the timer is armed only by queue_iova)', () => {
    const r = runSteps({ platform: LAZY, steps: [mapPage('a', P, PAGE, 'to_device'), FQ_TIMEOUT] });
    expect(traceOf(r, 1)).toEqual([]);
  });

  it('a timer fires once per arming: a second timeout without new unmaps does nothing', () => {
    const r = runSteps({ platform: LAZY, steps: [mapPage('a', P, PAGE, 'to_device'), unmap('a'), FQ_TIMEOUT, FQ_TIMEOUT] });
    expect(traceOf(r, 2)).toEqual([dsiLine(EDU_DID)]);
    expect(traceOf(r, 3)).toEqual([]);
  });

  it('map_sg unmaps lazily too: one unmap event, no flush until the timer', () => {
    const r = runSteps({ platform: LAZY, steps: [mapSg('s', [[P, PAGE], [P + 2 * PAGE, PAGE]], 'to_device'), unmap('s'), FQ_TIMEOUT] });
    expect(traceOf(r, 1)).toEqual([unmapLine(0xffffe000n, 0x2000, 0x2000)]);
    expect(traceOf(r, 2)).toEqual([dsiLine(EDU_DID)]);
  });

  it('a full ring (255 pending) flushes inside the 256th unmap, before queueing it', () => {
    const steps2: StepJson[] = [];
    for (let i = 0; i < 256; i++) steps2.push(mapPage(`m${i}`, P, PAGE, 'to_device'), unmap(`m${i}`));
    const r = runSteps({ platform: LAZY, steps: steps2 });
    // no IOVA is reused while queued: the 256 maps descend from 0xfffff000
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(r.results[2 * 255]).toEqual({ ok: true, dma: `0x${(0xfffff000 - 255 * PAGE).toString(16)}` });
    // unmaps 1..255 flush nothing; the 256th finds the ring full: one DSI after its unmap event
    for (let i = 0; i < 255; i++) expect(r.qi[2 * i + 1]).toEqual([]);
    expect(traceOf(r, 2 * 255 + 1)).toEqual([unmapLine(BigInt(0xfffff000 - 255 * PAGE), PAGE, PAGE), dsiLine(EDU_DID)]);
    // the flushed 255 are freed; the 256th waits for the next flush
    expect(r.model.leaks().queued).toBe(1);
  });
});
