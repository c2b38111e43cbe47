/**
 * End state of the generic path (DESIGN.md "What is observable" 6): after everything is unmapped
 * or freed and the flush queue drained, no live IOVA (ranges parked in rcaches are free), no
 * present leaf PTE, no busy swiotlb slot and nothing queued. While mappings live, the report
 * names exactly what they hold: the IOVA ranges alloc_iova_fast handed out (rounded below 32
 * granules, kernel-semantics 9.1.4), their leaves, their bounce slots (2 KiB each), and in lazy
 * mode the queued entries until the flush-queue timer fires (9.2.2).
 */
import { describe, expect, it } from 'vitest';
import {
  FQ_TIMEOUT,
  P,
  PAGE,
  allocCoherent,
  dmaRead,
  freeCoherent,
  mapPage,
  mapSg,
  runSteps,
  setBoundary,
  unmap,
  type DeviceJson,
  type StepJson,
} from './helpers.js';

const EMPTY = { liveIovas: [], presentPtes: [], busySwiotlbSlots: 0, queued: 0 };
const UNTRUSTED: DeviceJson = { id: 'u', bdf: '00:03.0', pci: true, untrusted: true, dmaMask: 64 };
const TRUSTED: DeviceJson = { id: 'dev', bdf: '00:02.0', pci: true, dmaMask: 64 };

/** a workload touching every kind of mapping, on two devices */
function workload(): { maps: StepJson[]; unmaps: StepJson[] } {
  return {
    maps: [
      mapPage('a', P, PAGE, 'to_device'), // 1 page at 0xfffff000
      mapPage('b', P + 0x2100, 0x200, 'bidirectional'), // 1 page at 0xffffe000 (offset kept)
      mapSg('s', [[P + 0x4000, 0x3000], [P + 0x8000, 0x2000]], 'from_device'), // 5 → 8 pages, 8-aligned below 0xffffe: 0xffff0000
      allocCoherent('c', 0x3000), // 3 → 4 pages, 4-aligned below 0xffff0: 0xfffec000
      mapPage('ua', P + 0x10100, 0x80, 'to_device', 'u'), // bounced: 2 slots
      mapSg('us', [[P + 0x11010, 0x10], [P + 0x12000, PAGE]], 'bidirectional', 'u'), // one bounced, one direct
    ],
    unmaps: [unmap('a'), unmap('b'), unmap('s'), freeCoherent('c'), unmap('ua'), unmap('us')],
  };
}

describe('leaks while mappings live', () => {
  it('names the IOVA ranges, leaves and slots held (strict)', () => {
    const { maps } = workload();
    const r = runSteps({ devices: [TRUSTED, UNTRUSTED], steps: maps });
    const rep = r.model.leaks();
    // trusted device: [0xfffff], [0xffffe], sg [0xffff0, 0xffff7] (5 rounded to 8),
    // coherent [0xfffec, 0xfffef] (3 rounded to 4)
    // untrusted device (its own IOVA domain): [0xfffff] (bounced), [0xffffe] (bounced), [0xffffd] (direct)
    expect([...rep.liveIovas].sort((x, y) => x.pfnLo - y.pfnLo)).toEqual(
      [
        { pfnLo: 0xfffec, pfnHi: 0xfffef },
        { pfnLo: 0xffff0, pfnHi: 0xffff7 },
        { pfnLo: 0xffffd, pfnHi: 0xffffd },
        { pfnLo: 0xffffe, pfnHi: 0xffffe },
        { pfnLo: 0xffffe, pfnHi: 0xffffe },
        { pfnLo: 0xfffff, pfnHi: 0xfffff },
        { pfnLo: 0xfffff, pfnHi: 0xfffff },
      ].sort((x, y) => x.pfnLo - y.pfnLo),
    );
    const pages = rep.presentPtes.reduce((a, p) => a + p.pages, 0);
    // a: 1, b: 1, s: 3 + 2 = 5 (default 4 GiB boundary: no pad), c: 3, ua: 1, us: 1 + 1
    expect(pages).toBe(1 + 1 + 5 + 3 + 1 + 2);
    // ua: 0x80 bytes → 2 slots (4 KiB), us entry 0: 0x10 bytes → 2 slots
    expect(rep.busySwiotlbSlots).toBe(4);
    expect(rep.queued).toBe(0);
  });

  it('is empty after everything is unmapped and freed (strict)', () => {
    const { maps, unmaps } = workload();
    const r = runSteps({ devices: [TRUSTED, UNTRUSTED], steps: [...maps, ...unmaps] });
    expect(r.results.every((x) => x.ok)).toBe(true);
    expect(r.model.leaks()).toEqual(EMPTY);
  });

  it('the boundary pad page is unmapped with its list', () => {
    const r = runSteps({ steps: [setBoundary('dev', 0x3fff), mapSg('s', [[P, 0x3000], [P + 0x8000, 0x2000]], 'to_device'), unmap('s')] });
    expect(r.model.leaks()).toEqual(EMPTY);
  });
});

describe('leaks in lazy mode', () => {
  it('queued entries are live IOVAs until the timer; then everything is empty', () => {
    const { maps, unmaps } = workload();
    const steps = [...maps, dmaRead('a', 0, 8), ...unmaps];
    const r = runSteps({ platform: { strict: false }, devices: [TRUSTED, UNTRUSTED], steps });
    const before = r.model.leaks();
    // the trusted device's four unmaps are queued; the untrusted device is strict
    expect(before.queued).toBe(4);
    expect(before.presentPtes).toEqual([]);
    expect(before.busySwiotlbSlots).toBe(0);
    expect([...before.liveIovas].map((x) => x.pfnLo).sort((x, y) => x - y)).toEqual([0xfffec, 0xffff0, 0xffffe, 0xfffff]);

    const drained = runSteps({ platform: { strict: false }, devices: [TRUSTED, UNTRUSTED], steps: [...steps, FQ_TIMEOUT] });
    expect(drained.model.leaks()).toEqual(EMPTY);
  });

  it('a single lazy unmap: one queued entry, drained by flush_queue_timeout', () => {
    const r = runSteps({ platform: { strict: false }, steps: [mapPage('a', P, PAGE, 'to_device'), unmap('a')] });
    expect(r.model.leaks()).toEqual({ liveIovas: [{ pfnLo: 0xfffff, pfnHi: 0xfffff }], presentPtes: [], busySwiotlbSlots: 0, queued: 1 });
    const d = runSteps({ platform: { strict: false }, steps: [mapPage('a', P, PAGE, 'to_device'), unmap('a'), FQ_TIMEOUT] });
    expect(d.model.leaks()).toEqual(EMPTY);
  });

  it('a caching-mode platform drains nothing: it was strict all along', () => {
    const { maps, unmaps } = workload();
    const r = runSteps({ platform: { strict: false, cachingMode: true }, devices: [TRUSTED, UNTRUSTED], steps: [...maps, ...unmaps] });
    expect(r.model.leaks()).toEqual(EMPTY);
  });
});

describe('a fresh machine has nothing to report', () => {
  it('before any step', () => {
    const r = runSteps({ devices: [TRUSTED, UNTRUSTED], steps: [] });
    expect(r.model.leaks()).toEqual(EMPTY);
  });
});
