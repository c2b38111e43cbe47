/**
 * The legacy path's rules, one scenario each, with every expected value derived by hand from
 * Linux 5.10.262 (drivers/iommu/intel/iommu.c, drivers/iommu/iova.c, drivers/iommu/intel/dmar.c;
 * kernel-semantics sections 2 and 10, section 10 deciding).
 *
 * This file: IOVA allocation.
 *
 *  - intel_alloc_iova: mask clamped to DOMAIN_MAX_ADDR(gaw), size rounded to a power of two,
 *    below 4 GiB first for every device unless forcedac, then the whole mask; dev_err_once on
 *    failure and __intel_map_single's "Device request" line.
 *
 * The scenario device is edu-like: PCI 00:02.0, so its domain is DID 4 (q35's 00:00.0 and
 * 00:01.0 are probed first and take 2 and 3; 0 and 1 are reserved).
 */
import { describe, expect, it } from 'vitest';
import {
  allLog,
  allocCoherent,
  DEV_PREFIX,
  dmaRead,
  EDU,
  logOf,
  mapPage,
  mapSg,
  P,
  patternHex,
  runSteps,
  setMask,
  traceOf,
  unmap,
  type DeviceJson,
} from './helpers.js';

describe('IOVA allocation (intel_alloc_iova, alloc_iova_fast, 5.10 iova.c)', () => {
  it('a 64-bit mask tries below 4 GiB first: top-down from pfn 0xfffff', () => {
    const r = runSteps({ steps: [mapPage('a', P, 4096, 'to_device'), mapPage('b', P + 0x1000, 4096, 'to_device')] });
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(r.results[1]).toEqual({ ok: true, dma: '0xffffe000' });
  });

  it('the 32-bit-first try applies to a non-PCI device too', () => {
    const dev: DeviceJson = { id: 'dev', bdf: '00:03.0', pci: false, dmaMask: 64 };
    const r = runSteps({ devices: [dev], steps: [mapPage('a', P, 4096, 'to_device')] });
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
  });

  it('when nothing below 4 GiB is free, the whole (clamped) mask is searched from its top', () => {
    const reserved = [{ start: '0x0', end: '0xffffffff' }];
    const r39 = runSteps({ reserved, steps: [mapPage('a', P, 4096, 'to_device'), mapPage('b', P + 0x1000, 4096, 'to_device')] });
    expect(r39.results[0]).toEqual({ ok: true, dma: '0x7ffffff000' });
    expect(r39.results[1]).toEqual({ ok: true, dma: '0x7fffffe000' });
    const r48 = runSteps({ platform: { agaw: 48 }, reserved, steps: [mapPage('a', P, 4096, 'to_device')] });
    expect(r48.results[0]).toEqual({ ok: true, dma: '0xfffffffff000' });
  });

  it('forcedac skips the 32-bit try and starts at the top of the domain width', () => {
    const r = runSteps({ platform: { forcedac: true }, steps: [mapPage('a', P, 4096, 'to_device'), mapPage('b', P + 0x1000, 4096, 'to_device')] });
    expect(r.results[0]).toEqual({ ok: true, dma: '0x7ffffff000' });
    expect(r.results[1]).toEqual({ ok: true, dma: '0x7fffffe000' });
    const r48 = runSteps({ platform: { forcedac: true, agaw: 48 }, steps: [mapPage('a', P, 4096, 'to_device')] });
    expect(r48.results[0]).toEqual({ ok: true, dma: '0xfffffffff000' });
  });

  it('forcedac changes nothing for a mask of 32 bits or less', () => {
    const r = runSteps({ platform: { forcedac: true }, devices: [{ ...EDU, dmaMask: 32 }], steps: [mapPage('a', P, 4096, 'to_device')] });
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
  });

  it('the mask is clamped to DOMAIN_MAX_ADDR(gaw); a mask inside the width is kept', () => {
    const steps = [mapPage('a', P, 4096, 'to_device')];
    const r48bits = runSteps({ platform: { forcedac: true }, devices: [{ ...EDU, dmaMask: 48 }], steps });
    expect(r48bits.results[0]).toEqual({ ok: true, dma: '0x7ffffff000' });
    const r36bits = runSteps({ platform: { forcedac: true }, devices: [{ ...EDU, dmaMask: 36 }], steps });
    expect(r36bits.results[0]).toEqual({ ok: true, dma: '0xffffff000' });
  });

  it('page counts are rounded up to a power of two: 3 pages occupy an aligned 4-page block', () => {
    const r = runSteps({
      steps: [mapPage('a', P, 3 * 4096, 'to_device'), mapPage('b', P + 0x10000, 4096, 'to_device'), dmaRead('a', 3 * 4096, 16)],
    });
    // (0x100000 - 4) & ~3 = 0xffffc; the next 1-page allocation starts below the whole block
    expect(r.results[0]).toEqual({ ok: true, dma: '0xffffc000' });
    expect(r.results[1]).toEqual({ ok: true, dma: '0xffffb000' });
    const leaves = r.model.presentLeaves(r.model.device('dev')).filter((l) => l.iovaPfn >= 0xffffc);
    // only the 3 pages asked for are mapped; the 4th page of the block is not
    expect(leaves).toEqual([
      { iovaPfn: 0xffffc, physPfn: 0x1000, pages: 1, perm: 1 },
      { iovaPfn: 0xffffd, physPfn: 0x1001, pages: 1, perm: 1 },
      { iovaPfn: 0xffffe, physPfn: 0x1002, pages: 1, perm: 1 },
    ]);
    expect(r.results[2]).toEqual({ ok: false, fault: { reason: '0x06', type: 'read', addr: '0xfffff000' } });
  });

  it('a sub-page offset is kept and a page-crossing buffer counts both pages', () => {
    const r = runSteps({ steps: [mapPage('a', P + 0xff0, 0x20, 'to_device'), dmaRead('a', 0, 0x20)] });
    // aligned_nrpages(0xff0, 0x20) = 2 -> (0x100000 - 2) & ~1 = 0xffffe, plus the offset
    expect(r.results[0]).toEqual({ ok: true, dma: '0xffffeff0' });
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(P + 0xff0, 0x20) });
  });

  it('a 30-bit mask allocates below 1 GiB: 0x3ffff000', () => {
    const r = runSteps({ devices: [{ ...EDU, dmaMask: 30 }], steps: [mapPage('a', P, 4096, 'to_device'), mapPage('b', P + 0x1000, 4096, 'to_device')] });
    expect(r.results[0]).toEqual({ ok: true, dma: '0x3ffff000' });
    expect(r.results[1]).toEqual({ ok: true, dma: '0x3fffe000' });
  });

  it('cached32 follows the last allocation below 4 GiB: a 32-bit allocation after a 30-bit one lands just below it (10.2)', () => {
    const r = runSteps({
      devices: [{ ...EDU, dmaMask: 30 }],
      steps: [mapPage('a', P, 4096, 'to_device'), setMask('dev', 32), mapPage('b', P + 0x1000, 4096, 'to_device')],
    });
    expect(r.results[0]).toEqual({ ok: true, dma: '0x3ffff000' });
    expect(r.results[2]).toEqual({ ok: true, dma: '0x3fffe000' });
  });

  it('the 32-bit try steps below a reserved window: 0x3ffff000 under a reservation of [1 GiB, 4 GiB)', () => {
    const r = runSteps({ reserved: [{ start: '0x40000000', end: '0xffffffff' }], steps: [mapPage('a', P, 4096, 'to_device')] });
    expect(r.results[0]).toEqual({ ok: true, dma: '0x3ffff000' });
  });

  it('an exhausted space fails the map: "Allocating N-page iova failed" once, "Device request" every time', () => {
    // 24-bit mask: pfns 1..0xfff. 2048 pages -> (0x1000 - 0x800) & ~0x7ff = 0x800; then nothing
    // aligned is left above start_pfn 1, max32_alloc_size = 2048 and the retry fails fast.
    const r = runSteps({
      devices: [{ ...EDU, dmaMask: 24 }],
      steps: [
        mapPage('a', 0x10000000, 0x800000, 'to_device'),
        mapPage('b', 0x11000000, 0x800000, 'to_device'),
        mapPage('c', 0x12000000, 0x800000, 'from_device'),
        mapSg('d', [[0x13000000, 0x800000]], 'to_device'),
      ],
    });
    expect(r.results[0]).toEqual({ ok: true, dma: '0x800000' });
    expect(r.results[1]).toEqual({ ok: false });
    expect(r.results[2]).toEqual({ ok: false });
    expect(r.results[3]).toEqual({ ok: false });
    expect(logOf(r, 1)).toEqual([`${DEV_PREFIX}DMAR: Allocating 2048-page iova failed`, `${DEV_PREFIX}DMAR: Device request: 800@11000000 dir 1 --- failed`]);
    expect(logOf(r, 2)).toEqual([`${DEV_PREFIX}DMAR: Device request: 800@12000000 dir 2 --- failed`]);
    // intel_map_sg prints nothing of its own; its dma_length of entry 0 is set to 0
    expect(logOf(r, 3)).toEqual([]);
    expect(r.runner.mappings.get('d')!.sgt!.sgl[0]!.dmaLength).toBe(0);
    // failed maps trace nothing
    expect([traceOf(r, 1), traceOf(r, 2), traceOf(r, 3)]).toEqual([[], [], []]);
  });

  it('an rcache hit must lie under the limit, and a failed 32-bit search fast-fails later 32-bit tries (max32_alloc_size)', () => {
    // reserved pfns 1..0xffffe leave only 0xfffff below 4 GiB
    const r = runSteps({
      reserved: [{ start: '0x1000', end: '0xffffefff' }],
      steps: [
        mapPage('a', P, 4096, 'to_device'),
        mapPage('b', P + 0x1000, 4096, 'to_device'),
        unmap('a'),
        unmap('b'),
        mapPage('c', P + 0x2000, 4096, 'to_device'),
        mapPage('d', P + 0x3000, 4096, 'to_device'),
        mapPage('e', P + 0x4000, 4096, 'to_device'),
      ],
    });
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
    // the 32-bit search fails (max32_alloc_size = 1), the 64-bit one starts at the top
    expect(r.results[1]).toEqual({ ok: true, dma: '0x7ffffff000' });
    // magazine [0xfffff, 0x7ffffff]: the 32-bit try skips the top entry and pops 0xfffff
    expect(r.results[4]).toEqual({ ok: true, dma: '0xfffff000' });
    // rcache frees are no tree frees: max32_alloc_size is still 1, the 32-bit try fails at once
    // and the 64-bit try pops 0x7ffffff
    expect(r.results[5]).toEqual({ ok: true, dma: '0x7ffffff000' });
    // nothing cached any more: the tree, from cached_node 0x7ffffff
    expect(r.results[6]).toEqual({ ok: true, dma: '0x7fffffe000' });
  });

  it('alloc_coherent uses the coherent mask; cached32 then steers the next 32-bit-first map below it', () => {
    const r = runSteps({ devices: [{ ...EDU, coherentMask: 30 }], steps: [allocCoherent('c', 0x1000), mapPage('a', P, 4096, 'to_device')] });
    expect(r.results[0]).toEqual({ ok: true, dma: '0x3ffff000' });
    expect(r.results[1]).toEqual({ ok: true, dma: '0x3fffe000' });
  });

  it('each CPU has its own rcache: an IOVA freed on CPU 1 is reused on CPU 1 only', () => {
    const r = runSteps({
      platform: { cpus: 2 },
      steps: [mapPage('a', P, 4096, 'to_device', 'dev', 0), unmap('a', 1), mapPage('b', P + 0x1000, 4096, 'to_device', 'dev', 0), mapPage('c', P + 0x2000, 4096, 'to_device', 'dev', 1)],
    });
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(r.results[2]).toEqual({ ok: true, dma: '0xffffe000' });
    expect(r.results[3]).toEqual({ ok: true, dma: '0xfffff000' });
  });

  it('dev_err_once is once per call site, not once per device (include/linux/dev_printk.h: a static flag in the macro)', () => {
    const r = runSteps({
      devices: [
        { ...EDU, dmaMask: 24 },
        { id: 'dev2', bdf: '00:03.0', dmaMask: 24 },
      ],
      steps: [
        mapPage('a', 0x10000000, 0x800000, 'to_device'),
        mapPage('b', 0x11000000, 0x800000, 'to_device'),
        mapPage('c', 0x12000000, 0x800000, 'to_device', 'dev2'),
        mapPage('d', 0x13000000, 0x800000, 'to_device', 'dev2'),
      ],
    });
    expect(r.results.map((x) => x.ok)).toEqual([true, false, true, false]);
    expect(allLog(r).filter((l) => l.includes('iova failed'))).toEqual([`${DEV_PREFIX}DMAR: Allocating 2048-page iova failed`]);
    expect(allLog(r).filter((l) => l.includes('Device request'))).toEqual([
      `${DEV_PREFIX}DMAR: Device request: 800@11000000 dir 1 --- failed`,
      'dmadiff 0000:00:03.0: DMAR: Device request: 800@13000000 dir 1 --- failed',
    ]);
  });
});
