/**
 * The legacy path's rules, one scenario each, with every expected value derived by hand from
 * Linux 5.10.262 (drivers/iommu/intel/iommu.c, drivers/iommu/iova.c, drivers/iommu/intel/dmar.c;
 * kernel-semantics sections 2 and 10, section 10 deciding):
 *
 *  - intel_alloc_iova: mask clamped to DOMAIN_MAX_ADDR(gaw), size rounded to a power of two,
 *    below 4 GiB first for every device unless forcedac, then the whole mask; dev_err_once on
 *    failure and __intel_map_single's "Device request" line;
 *  - __domain_mapping: bit 0 on every leaf, never SNP, superpages where both pfns and the count
 *    allow; map notify (a PSI under caching mode, nothing else on QEMU: RWBF = 0);
 *  - intel_unmap: strict PSI with the kernel's mask, or the flush queue and a domain-selective
 *    flush when it flushes;
 *  - intel_map_sg: one IOVA range, entries laid out page by page, offsets kept, returns nelems;
 *  - the intel_iommu:* trace events.
 *
 * The scenario device is edu-like: PCI 00:02.0, so its domain is DID 4 (q35's 00:00.0 and
 * 00:01.0 are probed first and take 2 and 3; 0 and 1 are reserved).
 */
import { describe, expect, it } from 'vitest';
import {
  DEV_PREFIX,
  EDU,
  EDU_DID,
  FQ_TIMEOUT,
  allLog,
  allocCoherent,
  contextOf,
  cpuRead,
  freeCoherent,
  dmaRead,
  dmaWrite,
  iotlbDescs,
  iotlbQw0,
  logOf,
  mapPage,
  mapSg,
  patternHex,
  psiQw1,
  runSteps,
  setMask,
  traceOf,
  unmap,
  walkLeaf,
  type DeviceJson,
} from './helpers.js';

const SID = 0x10; // 00:02.0
const P = 0x1000000; // a buffer area clear of every fixed region

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

describe('permission bits (__domain_mapping: attr = prot & (R|W|SNP) | bit 0)', () => {
  const steps = [
    mapPage('to', P, 4096, 'to_device'),
    mapPage('from', P + 0x1000, 4096, 'from_device'),
    mapPage('bidi', P + 0x2000, 4096, 'bidirectional'),
    dmaRead('from', 0, 256),
    dmaWrite('to', 0, 256, 0x5a),
    cpuRead(P, 256),
    dmaWrite('bidi', 0x10, 16, 0x77),
    cpuRead(P + 0x2000, 0x30),
  ];

  for (const zlr of [false, true]) {
    it(`every leaf has bit 0 whatever the direction, never SNP or anything else (zlr ${zlr})`, () => {
      const r = runSteps({ platform: { zlr }, steps: steps.slice(0, 3) });
      expect(r.results.map((x) => x.dma)).toEqual(['0xfffff000', '0xffffe000', '0xffffd000']);
      // the raw entries, found by walking the tables in memory: address | R (| W)
      expect(walkLeaf(r.model, SID, 0xfffff000n)).toEqual({ value: BigInt(P) | 1n, level: 1 });
      expect(walkLeaf(r.model, SID, 0xffffe000n)).toEqual({ value: BigInt(P + 0x1000) | 3n, level: 1 });
      expect(walkLeaf(r.model, SID, 0xffffd000n)).toEqual({ value: BigInt(P + 0x2000) | 3n, level: 1 });
      expect(r.model.presentLeaves(r.model.device('dev')).map((l) => l.perm)).toEqual([3, 3, 1]);
    });

    it(`a device read of a from_device buffer succeeds with the buffer's bytes (zlr ${zlr})`, () => {
      const r = runSteps({ platform: { zlr }, steps });
      expect(r.results[3]).toEqual({ ok: true, data: patternHex(P + 0x1000, 256) });
    });
  }

  it('a device write to a to_device buffer faults with reason 5, logged in the 5.10 format, and changes no byte', () => {
    const r = runSteps({ steps });
    expect(r.results[4]).toEqual({ ok: false, fault: { reason: '0x05', type: 'write', addr: '0xfffff000' } });
    expect(logOf(r, 4)).toEqual([
      'DMAR: DRHD: handling fault status reg 2',
      'DMAR: [DMA Write] Request device [00:02.0] PASID ffffffff fault addr fffff000 [fault reason 05] PTE Write access is not set',
    ]);
    expect(r.results[5]).toEqual({ ok: true, data: patternHex(P, 256) });
  });

  it('fault messages share one ratelimit state (burst 10): each fault takes 3 tokens, the 4th prints its status only', () => {
    const writes = [1, 2, 3, 4, 5].map(() => dmaWrite('to', 0, 16, 0x5a));
    const r = runSteps({ steps: [mapPage('to', P, 4096, 'to_device'), ...writes] });
    const record = 'DMAR: [DMA Write] Request device [00:02.0] PASID ffffffff fault addr fffff000 [fault reason 05] PTE Write access is not set';
    const status = 'DMAR: DRHD: handling fault status reg 2';
    for (let i = 1; i <= 5; i++) expect(r.results[i]).toEqual({ ok: false, fault: { reason: '0x05', type: 'write', addr: '0xfffff000' } });
    expect([1, 2, 3, 4, 5].map((i) => logOf(r, i))).toEqual([[status, record], [status, record], [status, record], [status], []]);
  });

  it('a bidirectional buffer takes device writes, visible to the CPU at once (intel_dma_ops has no sync)', () => {
    const r = runSteps({ steps });
    expect(r.results[6]).toEqual({ ok: true });
    expect(r.results[7]).toEqual({ ok: true, data: patternHex(P + 0x2000, 0x10) + '77'.repeat(16) + patternHex(P + 0x2020, 0x10) });
  });

  it('the context entry carries the domain id 4 and the agaw of a 39-bit width (AW 1)', () => {
    const r = runSteps({ steps: [] });
    expect(contextOf(r.model, SID)).toEqual({ did: EDU_DID, aw: 1 });
  });
});

describe('superpages (hardware_largepage_caps, domain_update_iommu_superpage)', () => {
  const BUF = 0x10000000; // 2 MiB aligned, clear of the fixed regions
  const steps = [mapPage('a', BUF, 0x200000, 'to_device'), dmaRead('a', 0xff8, 16), dmaRead('a', 0x1ffff0, 16), dmaRead('a', 0x100000, 0x1000)];

  it('a 2 MiB-aligned 2 MiB buffer at a 512-page-aligned IOVA gets one 2 MiB leaf (superpages ["2M"])', () => {
    const r = runSteps({ platform: { superpages: ['2M'] }, steps });
    // 512 pages -> (0x100000 - 0x200) & ~0x1ff = 0xffe00: 2 MiB aligned
    expect(r.results[0]).toEqual({ ok: true, dma: '0xffe00000' });
    expect(r.model.presentLeaves(r.model.device('dev'))).toEqual([{ iovaPfn: 0xffe00, physPfn: 0x10000, pages: 512, perm: 1 }]);
    expect(walkLeaf(r.model, SID, 0xffe00000n)).toEqual({ value: BigInt(BUF) | 0x80n | 1n, level: 2 });
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(BUF + 0xff8, 16) });
    expect(r.results[2]).toEqual({ ok: true, data: patternHex(BUF + 0x1ffff0, 16) });
    expect(r.results[3]).toEqual({ ok: true, data: patternHex(BUF + 0x100000, 0x1000) });
  });

  it('QEMU default (2M and 1G): still one 2 MiB leaf, since the count is below 1 GiB', () => {
    const r = runSteps({ steps });
    expect(r.model.presentLeaves(r.model.device('dev'))).toEqual([{ iovaPfn: 0xffe00, physPfn: 0x10000, pages: 512, perm: 1 }]);
  });

  it('domain_update_iommu_superpage counts levels: a unit with 1G only (mask 2, fls 2) still gets 2 MiB leaves from the driver', () => {
    const r = runSteps({ platform: { superpages: ['1G'] }, steps: [mapPage('a', BUF, 0x200000, 'to_device')] });
    expect(r.model.presentLeaves(r.model.device('dev'))).toEqual([{ iovaPfn: 0xffe00, physPfn: 0x10000, pages: 512, perm: 1 }]);
  });

  it('with superpages [] the same buffer takes 512 4 KiB leaves and reads the same', () => {
    const r = runSteps({ platform: { superpages: [] }, steps });
    const leaves = r.model.presentLeaves(r.model.device('dev'));
    expect(leaves.length).toBe(512);
    expect(leaves.every((l, i) => l.pages === 1 && l.iovaPfn === 0xffe00 + i && l.physPfn === 0x10000 + i && l.perm === 1)).toBe(true);
    expect(walkLeaf(r.model, SID, 0xffe00000n)).toEqual({ value: BigInt(BUF) | 1n, level: 1 });
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(BUF + 0xff8, 16) });
    expect(r.results[2]).toEqual({ ok: true, data: patternHex(BUF + 0x1ffff0, 16) });
  });

  it('after a superpage run the tail falls back to 4 KiB leaves (513 pages: 2 MiB + 4 KiB)', () => {
    const r = runSteps({ platform: { superpages: ['2M'] }, steps: [mapPage('a', BUF, 0x201000, 'to_device'), dmaRead('a', 0x1ffff8, 16)] });
    // 513 -> 1024 pages: (0x100000 - 0x400) & ~0x3ff = 0xffc00
    expect(r.results[0]).toEqual({ ok: true, dma: '0xffc00000' });
    expect(r.model.presentLeaves(r.model.device('dev'))).toEqual([
      { iovaPfn: 0xffc00, physPfn: 0x10000, pages: 512, perm: 1 },
      { iovaPfn: 0xffe00, physPfn: 0x10200, pages: 1, perm: 1 },
    ]);
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(BUF + 0x1ffff8, 16) });
  });

  it('a superpage replaces a stale 4 KiB table left under its range, without "already set"', () => {
    // 256 pages at 0xfff00 leave a level-1 table for 0xffe00-0xfffff; their unmap frees the IOVA to
    // the tree (class 8 is not cached), so the 512-page allocation lands on 0xffe00, over that table
    const r = runSteps({
      platform: { superpages: ['2M'] },
      steps: [mapPage('small', 0x20000000, 0x100000, 'to_device'), unmap('small'), mapPage('a', BUF, 0x200000, 'to_device'), dmaRead('a', 0x100ff8, 16)],
    });
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfff00000' });
    expect(r.results[2]).toEqual({ ok: true, dma: '0xffe00000' });
    expect(r.model.presentLeaves(r.model.device('dev'))).toEqual([{ iovaPfn: 0xffe00, physPfn: 0x10000, pages: 512, perm: 1 }]);
    expect(walkLeaf(r.model, SID, 0xfff00000n)).toEqual({ value: BigInt(BUF) | 0x80n | 1n, level: 2 });
    expect(r.results[3]).toEqual({ ok: true, data: patternHex(BUF + 0x100ff8, 16) });
    expect(allLog(r).filter((l) => l.includes('already set'))).toEqual([]);
  });

  it('a buffer that is not 2 MiB aligned physically gets 4 KiB leaves only', () => {
    const r = runSteps({ platform: { superpages: ['2M'] }, steps: [mapPage('a', BUF + 0x1000, 0x200000, 'to_device')] });
    const leaves = r.model.presentLeaves(r.model.device('dev'));
    expect(leaves.length).toBe(512);
    expect(leaves.every((l) => l.pages === 1)).toBe(true);
  });
});

describe('invalidation (map notify, iommu_flush_iotlb_psi, iommu_flush_iova)', () => {
  it('caching mode: one page-selective flush per map call, at the map pfn with AM = log2(next_pow2(npages))', () => {
    const r = runSteps({
      platform: { cachingMode: true },
      steps: [
        mapPage('a', P, 3 * 4096, 'to_device'),
        mapSg('b', [[P + 0x10000, 0x1000], [P + 0x12000, 0x2000]], 'to_device'),
        mapPage('c', P + 0x20000, 4096, 'from_device'),
        allocCoherent('d', 0x5000),
      ],
    });
    expect(r.results.map((x) => x.ok)).toEqual([true, true, true, true]);
    const psi = iotlbQw0(EDU_DID, 'psi');
    expect(psi).toBe(0x400f2n);
    // 3 pages at 0xffffc (AM 2); 3 pages from cached32 0xffffc: (0xffffc - 4) & ~3 = 0xffff8;
    // 1 page 0xffff7; 5 pages -> 8: (0xffff7 - 8) & ~7 = 0xfffe8 (AM 3)
    expect(iotlbDescs(r.qi[0]!)).toEqual([[psi, psiQw1(0xffffc, 2)]]);
    expect(iotlbDescs(r.qi[1]!)).toEqual([[psi, psiQw1(0xffff8, 2)]]);
    expect(iotlbDescs(r.qi[2]!)).toEqual([[psi, psiQw1(0xffff7, 0)]]);
    expect(iotlbDescs(r.qi[3]!)).toEqual([[psi, psiQw1(0xfffe8, 3)]]);
  });

  it('without caching mode a map queues no invalidation at all (QEMU has no RWBF)', () => {
    const r = runSteps({
      steps: [mapPage('a', P, 3 * 4096, 'to_device'), mapSg('b', [[P + 0x10000, 0x1000], [P + 0x12000, 0x2000]], 'to_device'), allocCoherent('d', 0x5000)],
    });
    expect(r.results.map((x) => x.ok)).toEqual([true, true, true]);
    expect(r.qi).toEqual([[], [], []]);
  });

  it('strict unmap: one PSI at the IOVA with the kernel mask (3 pages -> AM 2: qw0 0x400f2, qw1 0xffffc002)', () => {
    const r = runSteps({
      steps: [mapPage('a', P, 3 * 4096, 'to_device'), unmap('a'), mapPage('b', P + 0xff0, 0x20, 'to_device'), unmap('b'), mapSg('c', [[P + 0x8000, 0x1000], [P + 0xa100, 0x100]], 'to_device'), unmap('c')],
    });
    expect(r.results[0]).toEqual({ ok: true, dma: '0xffffc000' });
    expect(iotlbDescs(r.qi[1]!)).toEqual([[0x400f2n, 0xffffc002n]]);
    // 2 pages of 0xff0 + 0x20: the 2-page class of the fresh tree below cached32 0xffffc -> 0xffffa
    expect(r.results[2]).toEqual({ ok: true, dma: '0xffffaff0' });
    expect(iotlbDescs(r.qi[3]!)).toEqual([[0x400f2n, psiQw1(0xffffa, 1)]]);
    // 2 one-page entries: the 2-page class again, rcache LIFO -> 0xffffa
    expect(r.results[4]).toMatchObject({ ok: true, count: 2, segments: [{ dma: '0xffffa000', len: 0x1000 }, { dma: '0xffffb100', len: 0x100 }] });
    expect(iotlbDescs(r.qi[5]!)).toEqual([[0x400f2n, psiQw1(0xffffa, 1)]]);
  });

  it('beyond MAMV (18) the page-selective flush falls back to a domain-selective one', () => {
    // two 1 GiB entries: 2^19 pages -> (0x100000 - 0x80000) & ~0x7ffff = 0x80000, and AM 19 > 18
    const sg: Array<[number, number]> = [
      [0x100000000, 0x40000000],
      [0x140000000, 0x40000000],
    ];
    const leaves: Array<{ iovaPfn: number; physPfn: number; pages: number; perm: number }> = [];
    const r = runSteps({ platform: { cachingMode: true }, steps: [mapSg('s', sg, 'to_device'), unmap('s')] }, (i, model) => {
      if (i === 0) leaves.push(...model.presentLeaves(model.device('dev')));
    });
    expect(r.results[0]).toEqual({
      ok: true,
      count: 2,
      segments: [
        { dma: '0x80000000', len: 0x40000000 },
        { dma: '0xc0000000', len: 0x40000000 },
      ],
    });
    // both entries are 1 GiB aligned on both sides: two 1 GiB leaves
    expect(leaves).toEqual([
      { iovaPfn: 0x80000, physPfn: 0x100000, pages: 0x40000, perm: 1 },
      { iovaPfn: 0xc0000, physPfn: 0x140000, pages: 0x40000, perm: 1 },
    ]);
    expect(iotlbDescs(r.qi[0]!)).toEqual([[0x400e2n, 0n]]);
    expect(iotlbDescs(r.qi[1]!)).toEqual([[0x400e2n, 0n]]);
  });

  it('deferred (strict false): nothing at unmap, one domain-selective flush (qw0 0x400e2) when the queue flushes', () => {
    const r = runSteps({ platform: { strict: false }, steps: [mapPage('a', P, 3 * 4096, 'to_device'), unmap('a'), FQ_TIMEOUT] });
    expect(r.qi[1]).toEqual([]);
    expect(iotlbQw0(EDU_DID, 'dsi')).toBe(0x400e2n);
    expect(iotlbDescs(r.qi[2]!)).toEqual([[0x400e2n, 0n]]);
  });
});

describe('trace events (include/trace/events/intel_iommu.h)', () => {
  const D = 'dev=0000:00:02.0';

  it('map_single carries the offset handle, the physical address and npages * 4096; unmap_single the caller values', () => {
    const r = runSteps({ steps: [mapPage('a', P + 0xff0, 0x20, 'to_device'), unmap('a'), allocCoherent('c', 0x5000)] });
    expect(traceOf(r, 0)).toEqual([`map_single: ${D} dev_addr=0xffffeff0 phys_addr=0x1000ff0 size=8192`]);
    expect(traceOf(r, 1)).toEqual([`unmap_single: ${D} dev_addr=0xffffeff0 size=32`]);
    // a coherent allocation is a map_single of PAGE_ALIGN(size) (its physical page is the
    // allocator's): 5 -> 8 pages from the tree, whose cached32 node is still 0xffffe (parked in
    // the 2-page rcache, so still allocated): (0xffffe - 8) & ~7 = 0xffff0
    expect(traceOf(r, 2)).toHaveLength(1);
    expect(traceOf(r, 2)[0]).toMatch(new RegExp(`^map_single: ${D} dev_addr=0xffff0000 phys_addr=0x[0-9a-f]+000 size=20480$`));
  });

  it('free_coherent traces unmap_single with PAGE_ALIGN(size)', () => {
    const r = runSteps({ steps: [allocCoherent('c', 0x1800), freeCoherent('c')] });
    expect(traceOf(r, 0)[0]).toMatch(new RegExp(`^map_single: ${D} dev_addr=0xffffe000 phys_addr=0x[0-9a-f]+000 size=8192$`));
    expect(traceOf(r, 1)).toEqual([`unmap_single: ${D} dev_addr=0xffffe000 size=8192`]);
  });

  it('map_sg: one [i/n] event per entry; unmap: unmap_single then unmap_sg over the summed pages', () => {
    const r = runSteps({ steps: [mapSg('s', [[P + 0x100, 0x200], [P + 0x2000, 0x1000], [P + 0x4800, 0x1000]], 'to_device'), unmap('s')] });
    expect(traceOf(r, 0)).toEqual([
      `map_sg: ${D} [1/3] dev_addr=0xffffc100 phys_addr=0x1000100 size=512`,
      `map_sg: ${D} [2/3] dev_addr=0xffffd000 phys_addr=0x1002000 size=4096`,
      `map_sg: ${D} [3/3] dev_addr=0xffffe800 phys_addr=0x1004800 size=4096`,
    ]);
    expect(traceOf(r, 1)).toEqual([`unmap_single: ${D} dev_addr=0xffffc000 size=16384`, `unmap_sg: ${D} dev_addr=0xffffc000 size=16384`]);
  });

  it('bounce ops: bounce_map_single; unmap_single then bounce_unmap_single; bounce_map_sg after each entry\'s bounce_map_single', () => {
    const r = runSteps({
      devices: [{ ...EDU, untrusted: true }],
      steps: [mapPage('a', 0x3402100, 0x200, 'to_device'), unmap('a'), mapSg('s', [[0x3402100, 0x200], [0x3404000, 0x1000]], 'to_device'), unmap('s')],
    });
    expect(traceOf(r, 0)).toEqual([`bounce_map_single: ${D} dev_addr=0xfffff000 phys_addr=0x3402100 size=512`]);
    expect(traceOf(r, 1)).toEqual([`unmap_single: ${D} dev_addr=0xfffff000 size=512`, `bounce_unmap_single: ${D} dev_addr=0xfffff000 size=512`]);
    // strict unmap put 0xfffff in the 1-page rcache: entry 1 pops it, entry 2 comes from the tree
    expect(traceOf(r, 2)).toEqual([
      `bounce_map_single: ${D} dev_addr=0xfffff000 phys_addr=0x3402100 size=512`,
      `bounce_map_single: ${D} dev_addr=0xffffe000 phys_addr=0x3404000 size=4096`,
      `bounce_map_sg: ${D} [1/2] dev_addr=0xfffff000 phys_addr=0x3402100 size=512`,
      `bounce_map_sg: ${D} [2/2] dev_addr=0xffffe000 phys_addr=0x3404000 size=4096`,
    ]);
    expect(traceOf(r, 3)).toEqual([
      `unmap_single: ${D} dev_addr=0xfffff000 size=512`,
      `bounce_unmap_single: ${D} dev_addr=0xfffff000 size=512`,
      `unmap_single: ${D} dev_addr=0xffffe000 size=4096`,
      `bounce_unmap_single: ${D} dev_addr=0xffffe000 size=4096`,
    ]);
  });
});

describe('map_sg (intel_map_sg / domain_sg_mapping)', () => {
  it('one IOVA range, entries back to back page by page, offsets kept, nothing merged, nelems returned', () => {
    const r = runSteps({
      steps: [
        mapSg('s', [[P + 0x100, 0x200], [P + 0x2000, 0x1000], [P + 0x4800, 0x1000]], 'to_device'),
        dmaRead('s', 0, 0x2200),
        dmaRead('s', -0x100, 0x100),
        mapPage('n', P + 0x10000, 4096, 'to_device'),
      ],
    });
    // 1 + 1 + 2 pages = 4 -> 0xffffc
    expect(r.results[0]).toEqual({
      ok: true,
      count: 3,
      segments: [
        { dma: '0xffffc100', len: 0x200 },
        { dma: '0xffffd000', len: 0x1000 },
        { dma: '0xffffe800', len: 0x1000 },
      ],
    });
    expect(r.model.presentLeaves(r.model.device('dev')).filter((l) => l.iovaPfn >= 0xffffc)).toEqual([
      { iovaPfn: 0xffffc, physPfn: 0x1000, pages: 1, perm: 1 },
      { iovaPfn: 0xffffd, physPfn: 0x1002, pages: 1, perm: 1 },
      { iovaPfn: 0xffffe, physPfn: 0x1004, pages: 1, perm: 1 },
      { iovaPfn: 0xfffff, physPfn: 0x1005, pages: 1, perm: 1 },
    ]);
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(P + 0x100, 0x200) + patternHex(P + 0x2000, 0x1000) + patternHex(P + 0x4800, 0x1000) });
    // the whole first page is mapped: the bytes before the entry are reachable
    expect(r.results[2]).toEqual({ ok: true, data: patternHex(P, 0x100) });
    // one allocation of 4 pages: the next one starts below it
    expect(r.results[3]).toEqual({ ok: true, dma: '0xffffb000' });
  });

  it('max_seg_size and seg_boundary_mask are ignored: contiguous entries stay separate, long ones whole', () => {
    const r = runSteps({
      devices: [{ ...EDU, maxSegSize: 4096, segBoundaryMask: '0x1fff' }],
      steps: [mapSg('s', [[P, 0x1000], [P + 0x1000, 0x1000], [P + 0x2000, 0x3000]], 'from_device')],
    });
    // 5 pages -> 8: 0xffff8
    expect(r.results[0]).toEqual({
      ok: true,
      count: 3,
      segments: [
        { dma: '0xffff8000', len: 0x1000 },
        { dma: '0xffff9000', len: 0x1000 },
        { dma: '0xffffa000', len: 0x3000 },
      ],
    });
  });
});
