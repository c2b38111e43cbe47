/**
 * The legacy path's rules, one scenario each, with every expected value derived by hand from
 * Linux 5.10.262 (drivers/iommu/intel/iommu.c, drivers/iommu/iova.c, drivers/iommu/intel/dmar.c;
 * kernel-semantics sections 2 and 10, section 10 deciding).
 *
 * This file: what the unit and the trace are told.
 *
 *  - map notify (a PSI under caching mode, nothing else on QEMU: RWBF = 0);
 *  - intel_unmap: strict PSI with the kernel's mask, or the flush queue and a domain-selective
 *    flush when it flushes;
 *  - the intel_iommu:* trace events.
 *
 * The scenario device is edu-like: PCI 00:02.0, so its domain is DID 4 (q35's 00:00.0 and
 * 00:01.0 are probed first and take 2 and 3; 0 and 1 are reserved).
 */
import { describe, expect, it } from 'vitest';
import {
  allocCoherent,
  EDU,
  EDU_DID,
  FQ_TIMEOUT,
  freeCoherent,
  iotlbDescs,
  iotlbQw0,
  mapPage,
  mapSg,
  P,
  psiQw1,
  runSteps,
  traceOf,
  unmap,
} from './helpers.js';

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
