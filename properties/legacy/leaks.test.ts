/**
 * End state (DESIGN.md observable 6) on the legacy path: once every mapping is gone and the
 * flush queues are drained, model.leaks() reports no live IOVA, no present PTE, no busy swiotlb
 * slot and nothing queued -- and, so that the check can fail, it does report each of them while
 * they still exist.
 *
 * The scenario mixes a trusted device (intel_dma_ops: map_page, map_sg, coherent, lazily
 * unmapped through the flush queue) with an untrusted one (bounce_dma_ops: bounced and direct
 * mappings, always unmapped strictly). Expected IOVAs follow the 5.10 allocator by hand: each
 * device has its own domain and IOVA space, 64-bit masks allocate top-down below 4 GiB, sizes
 * rounded to powers of two (kernel-semantics 10.2, 10.3).
 */
import { describe, expect, it } from 'vitest';
import type { LeakReport } from '../../platform/dma-api.js';
import { allocCoherent, EDU, FQ_TIMEOUT, freeCoherent, mapPage, mapSg, P, runSteps, unmap, type DeviceJson, type StepJson } from './helpers.js';

const U: DeviceJson = { id: 'u', bdf: '00:03.0', pci: true, untrusted: true, dmaMask: 64 };

const MAPS: StepJson[] = [
  mapPage('a1', P, 4096, 'to_device'),
  mapSg('s1', [[P + 0x2000, 0x1000], [P + 0x4100, 0x100]], 'bidirectional'),
  allocCoherent('c1', 0x1000),
  mapPage('b1', 0x3402100, 0x200, 'from_device', 'u'),
  mapSg('s2', [[0x3406100, 0x300], [0x3408000, 0x1000]], 'to_device', 'u'),
  mapPage('b2', 0x340a000, 0x2000, 'bidirectional', 'u'),
];
const UNMAPS: StepJson[] = [unmap('a1'), unmap('s1'), freeCoherent('c1'), unmap('b1'), unmap('s2'), unmap('b2')];

const CLEAN: LeakReport = { liveIovas: [], presentPtes: [], busySwiotlbSlots: 0, queued: 0 };

function pfns(report: LeakReport): number[] {
  return report.presentPtes.map((p) => p.iovaPfn);
}

describe('leak report on a mixed lazy scenario', () => {
  const snapshots = new Map<number, LeakReport>();
  const r = runSteps({ platform: { strict: false }, devices: [EDU, U], steps: [...MAPS, ...UNMAPS, FQ_TIMEOUT] }, (i, model) => {
    snapshots.set(i, model.leaks());
  });

  it('every map succeeded', () => {
    expect(r.results.slice(0, MAPS.length).map((x) => x.ok)).toEqual([true, true, true, true, true, true]);
  });

  it('while everything is mapped: every live IOVA, every present leaf and the busy slots are reported', () => {
    const s = snapshots.get(5)!;
    // trusted: a1 0xfffff; s1 2 pages (0xfffff - 2) & ~1 = 0xffffc; c1 below it 0xffffb
    // untrusted: b1 0xfffff; s2 one IOVA per entry 0xffffe, 0xffffd; b2 2 pages 0xffffa
    expect(s.liveIovas).toEqual([
      { pfnLo: 0xffffb, pfnHi: 0xffffb },
      { pfnLo: 0xffffc, pfnHi: 0xffffd },
      { pfnLo: 0xfffff, pfnHi: 0xfffff },
      { pfnLo: 0xffffa, pfnHi: 0xffffb },
      { pfnLo: 0xffffd, pfnHi: 0xffffd },
      { pfnLo: 0xffffe, pfnHi: 0xffffe },
      { pfnLo: 0xfffff, pfnHi: 0xfffff },
    ]);
    expect(pfns(s)).toEqual([0xffffb, 0xffffc, 0xffffd, 0xfffff, 0xffffa, 0xffffb, 0xffffd, 0xffffe, 0xfffff]);
    // b1 and s2's first entry are bounced: ALIGN(size, 4096) = 2 slots of 2 KiB each
    expect(s.busySwiotlbSlots).toBe(4);
    expect(s.queued).toBe(0);
  });

  it('after the unmaps: no PTE and no slot (cleared at unmap), but the trusted IOVAs wait in the flush queue', () => {
    const s = snapshots.get(MAPS.length + UNMAPS.length - 1)!;
    expect(s.presentPtes).toEqual([]);
    expect(s.busySwiotlbSlots).toBe(0);
    expect(s.queued).toBe(3);
    expect(s.liveIovas).toEqual([
      { pfnLo: 0xffffb, pfnHi: 0xffffb },
      { pfnLo: 0xffffc, pfnHi: 0xffffd },
      { pfnLo: 0xfffff, pfnHi: 0xfffff },
    ]);
  });

  it('after the flush-queue timeout: nothing live, present, busy or queued', () => {
    expect(r.model.leaks()).toEqual(CLEAN);
  });
});

describe('leak report in strict mode', () => {
  it('is clean right after the last unmap, without any timeout', () => {
    const r = runSteps({ devices: [EDU, U], steps: [...MAPS, ...UNMAPS] });
    expect(r.model.leaks()).toEqual(CLEAN);
  });

  it('reports exactly the mapping left behind', () => {
    const r = runSteps({ platform: { strict: false }, devices: [EDU, U], steps: [...MAPS, ...UNMAPS.slice(0, 5), FQ_TIMEOUT] });
    expect(r.model.leaks()).toEqual({
      liveIovas: [{ pfnLo: 0xffffa, pfnHi: 0xffffb }],
      presentPtes: [
        { iovaPfn: 0xffffa, physPfn: 0x340a, pages: 1 },
        { iovaPfn: 0xffffb, physPfn: 0x340b, pages: 1 },
      ],
      busySwiotlbSlots: 0,
      queued: 0,
    });
  });

  it('reports a bounced mapping left behind by its busy slots', () => {
    const r = runSteps({ devices: [EDU, U], steps: [mapPage('b1', 0x3402100, 0x200, 'from_device', 'u')] });
    const s = r.model.leaks();
    expect(s.busySwiotlbSlots).toBe(2);
    expect(s.liveIovas).toEqual([{ pfnLo: 0xfffff, pfnHi: 0xfffff }]);
    expect(pfns(s)).toEqual([0xfffff]);
  });
});
