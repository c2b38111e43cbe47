/**
 * The legacy path's rules, one scenario each, with every expected value derived by hand from
 * Linux 5.10.262 (drivers/iommu/intel/iommu.c, drivers/iommu/iova.c, drivers/iommu/intel/dmar.c;
 * kernel-semantics sections 2 and 10, section 10 deciding).
 *
 * This file: what the page tables get.
 *
 *  - __domain_mapping: bit 0 on every leaf, never SNP, superpages where both pfns and the count
 *    allow;
 *  - intel_map_sg: one IOVA range, entries laid out page by page, offsets kept, returns nelems.
 *
 * The scenario device is edu-like: PCI 00:02.0, so its domain is DID 4 (q35's 00:00.0 and
 * 00:01.0 are probed first and take 2 and 3; 0 and 1 are reserved).
 */
import { describe, expect, it } from 'vitest';
import {
  allLog,
  contextOf,
  cpuRead,
  dmaRead,
  dmaWrite,
  EDU,
  EDU_DID,
  logOf,
  mapPage,
  mapSg,
  P,
  patternHex,
  runSteps,
  SID,
  unmap,
  walkLeaf,
} from './helpers.js';

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
