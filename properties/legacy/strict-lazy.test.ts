/**
 * Strict versus lazy unmapping on the legacy path (Linux 5.10.262 intel_unmap, iova.c's flush
 * queue, init_dmars' caching-mode rule; kernel-semantics 1.6, 10.1, 10.2, 10.7):
 *
 *  - the PTEs are cleared at unmap in both modes;
 *  - strict: a page-selective IOTLB flush, then free_iova_fast (the IOVA is reusable at once,
 *    rcache LIFO);
 *  - lazy: queue_iova; the IOTLB may still hold the translation and the IOVA is not handed out
 *    again until a flush -- the 10 ms timer, or a full ring (IOVA_FQ_SIZE 256, at most 255
 *    pending per CPU) -- does one domain-selective flush and frees the entries;
 *  - caching mode forces intel_iommu_strict, with "Disable batched IOTLB flush due to
 *    virtualization".
 */
import { describe, expect, it } from 'vitest';
import {
  dmaRead,
  FQ_TIMEOUT,
  iotlbDescs,
  logOf,
  mapPage,
  P,
  patternHex,
  psiQw1,
  runSteps,
  unmap,
  type StepJson,
} from './helpers.js';

const READ_FAULT = { ok: false, fault: { reason: '0x06', type: 'read', addr: '0xfffff000' } };
const CM_LINE = 'DMAR: Disable batched IOTLB flush due to virtualization';

/** map, device read (fills the IOTLB), unmap, device read, timer, device read */
const USE_AFTER_UNMAP: StepJson[] = [mapPage('a', P, 4096, 'to_device'), dmaRead('a', 0, 64), unmap('a'), dmaRead('a', 0, 64), FQ_TIMEOUT, dmaRead('a', 0, 64)];

describe('strict mode', () => {
  it('a device read after unmap faults at once with reason 6, even after the IOTLB cached the page', () => {
    const r = runSteps({ steps: USE_AFTER_UNMAP });
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(P, 64) });
    expect(iotlbDescs(r.qi[2]!)).toEqual([[0x400f2n, psiQw1(0xfffff, 0)]]);
    expect(r.results[3]).toEqual(READ_FAULT);
    expect(logOf(r, 3)).toEqual([
      'DMAR: DRHD: handling fault status reg 2',
      'DMAR: [DMA Read] Request device [00:02.0] PASID ffffffff fault addr fffff000 [fault reason 06] PTE Read access is not set',
    ]);
    expect(r.results[5]).toEqual(READ_FAULT);
  });

  it('the unmapped IOVA is reused by the next map of its size (rcache, last in first out)', () => {
    const r = runSteps({ steps: [mapPage('a', P, 4096, 'to_device'), mapPage('b', P + 0x1000, 4096, 'to_device'), unmap('a'), unmap('b'), mapPage('c', P + 0x2000, 4096, 'to_device'), mapPage('d', P + 0x3000, 4096, 'to_device')] });
    expect(r.results[4]).toEqual({ ok: true, dma: '0xffffe000' });
    expect(r.results[5]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(r.model.leaks().queued).toBe(0);
  });
});

describe('lazy mode (strict false, no caching mode)', () => {
  it('the PTE is gone at unmap, yet a translation cached in the IOTLB still serves reads until the timer flush', () => {
    const r = runSteps({ platform: { strict: false }, steps: USE_AFTER_UNMAP }, (i, model) => {
      if (i === 2) {
        expect(model.presentLeaves(model.device('dev'))).toEqual([]);
        expect(model.leaks().queued).toBe(1);
      }
    });
    expect(r.qi[2]).toEqual([]);
    expect(r.results[3]).toEqual({ ok: true, data: patternHex(P, 64) });
    expect(iotlbDescs(r.qi[4]!)).toEqual([[0x400e2n, 0n]]);
    expect(r.results[5]).toEqual(READ_FAULT);
    expect(r.model.leaks().queued).toBe(0);
  });

  it('without an earlier read nothing is cached: the read after unmap faults although the flush is still pending', () => {
    const r = runSteps({ platform: { strict: false }, steps: [mapPage('a', P, 4096, 'to_device'), unmap('a'), dmaRead('a', 0, 64)] });
    expect(r.results[2]).toEqual(READ_FAULT);
    expect(r.model.leaks().queued).toBe(1);
  });

  it('an unmapped IOVA is not handed out again until the queue is flushed', () => {
    const r = runSteps({
      platform: { strict: false },
      steps: [mapPage('a', P, 4096, 'to_device'), unmap('a'), mapPage('b', P + 0x1000, 4096, 'to_device'), FQ_TIMEOUT, mapPage('c', P + 0x2000, 4096, 'to_device')],
    });
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(r.results[2]).toEqual({ ok: true, dma: '0xffffe000' });
    expect(r.results[4]).toEqual({ ok: true, dma: '0xfffff000' });
  });

  it('the timer is re-armed by the first unmap after a flush: each batch gets its own domain-selective flush', () => {
    const r = runSteps({
      platform: { strict: false },
      steps: [mapPage('a', P, 4096, 'to_device'), unmap('a'), FQ_TIMEOUT, mapPage('b', P + 0x1000, 4096, 'to_device'), unmap('b'), FQ_TIMEOUT, FQ_TIMEOUT],
    });
    expect(iotlbDescs(r.qi[2]!)).toEqual([[0x400e2n, 0n]]);
    // the rcache gives 0xfffff back after the first flush
    expect(r.results[3]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(iotlbDescs(r.qi[5]!)).toEqual([[0x400e2n, 0n]]);
    // nothing queued, no timer: no flush
    expect(r.qi[6]).toEqual([]);
  });

  it('a full ring (255 pending) is flushed synchronously by the 256th unmap on the CPU, which frees the others', () => {
    const steps: StepJson[] = [];
    for (let i = 0; i < 256; i++) steps.push(mapPage(`m${i}`, P + i * 0x1000, 4096, 'to_device'));
    for (let i = 0; i < 256; i++) steps.push(unmap(`m${i}`));
    steps.push(mapPage('next', P + 0x200000, 4096, 'to_device'));
    const queued: number[] = [];
    const liveAfterFullFlush: Array<{ pfnLo: number; pfnHi: number }> = [];
    const r = runSteps({ platform: { strict: false }, steps }, (i, model) => {
      queued.push(model.leaks().queued);
      if (i === 511) liveAfterFullFlush.push(...model.leaks().liveIovas);
    });
    // top-down 1-page IOVAs: map i at pfn 0xfffff - i
    for (let i = 0; i < 256; i++) expect(r.results[i]!.dma).toBe(`0x${(0xfffff - i).toString(16)}000`);
    // 255 unmaps only queue: no invalidation, one more pending each time
    for (let k = 0; k < 255; k++) {
      expect(r.qi[256 + k]).toEqual([]);
      expect(queued[256 + k]).toBe(k + 1);
    }
    // the 256th finds the ring full: one domain-selective flush, 255 freed, itself queued
    expect(iotlbDescs(r.qi[511]!)).toEqual([[0x400e2n, 0n]]);
    expect(queued[511]).toBe(1);
    expect(liveAfterFullFlush).toEqual([{ pfnLo: 0xfff00, pfnHi: 0xfff00 }]);
    // the freed IOVAs went to the 1-page rcache in unmap order (loaded then swapped with prev at
    // 128): the last one freed, map 254's pfn 0xfff01, comes back first
    expect(r.results[512]).toEqual({ ok: true, dma: '0xfff01000' });
  });

  it('the timer flushes every CPU ring: unmaps queued on two CPUs are all freed', () => {
    const r = runSteps(
      {
        platform: { strict: false, cpus: 2 },
        steps: [mapPage('a', P, 4096, 'to_device', 'dev', 0), mapPage('b', P + 0x1000, 4096, 'to_device', 'dev', 1), unmap('a', 0), unmap('b', 1), FQ_TIMEOUT],
      },
      (i, model) => {
        if (i === 3) expect(model.leaks().queued).toBe(2);
      },
    );
    expect(iotlbDescs(r.qi[4]!)).toEqual([[0x400e2n, 0n]]);
    expect(r.model.leaks()).toEqual({ liveIovas: [], presentPtes: [], busySwiotlbSlots: 0, queued: 0 });
  });
});

describe('caching mode forces strict (init_dmars)', () => {
  it('with strict false: the warning at boot, a PSI at unmap, immediate fault and immediate IOVA reuse', () => {
    const r = runSteps({ platform: { cachingMode: true, strict: false }, steps: [...USE_AFTER_UNMAP, mapPage('b', P + 0x1000, 4096, 'to_device')] });
    expect(logOf(r, -1).filter((l) => l === CM_LINE)).toEqual([CM_LINE]);
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(P, 64) });
    expect(iotlbDescs(r.qi[2]!)).toEqual([[0x400f2n, psiQw1(0xfffff, 0)]]);
    expect(r.results[3]).toEqual(READ_FAULT);
    expect(r.qi[4]).toEqual([]);
    expect(r.results[6]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(r.model.leaks().queued).toBe(0);
  });

  it('no warning when strict was already set, nor without caching mode', () => {
    const cmStrict = runSteps({ platform: { cachingMode: true, strict: true }, steps: [] });
    const lazy = runSteps({ platform: { cachingMode: false, strict: false }, steps: [] });
    expect(logOf(cmStrict, -1)).not.toContain(CM_LINE);
    expect(logOf(lazy, -1)).not.toContain(CM_LINE);
  });
});
