/**
 * The checker against seeded bugs in the generic path (SeededBugs): each scenario diverges
 * only when its bug is switched on, and the checker reports it with the right kind and fails the
 * gate; with every bug off the two models show no failing divergence. The models' one real,
 * intended exposure difference and the allowlist entries D1-D3 are in allowlist-d1-d3.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { failing } from '../../harness/run/runner.js';
import { DEV, loadFixture, patternHex, runJson as run, scenarioJson, zeroHex, type StepJson } from './helpers.js';

const PAGE = 0x3400000;

/** map a page, let the device read it (the IOTLB caches it), unmap, read through the dead mapping */
const USE_AFTER_UNMAP: StepJson[] = [
  { op: 'map_page', dev: 'dev', phys: '0x3400000', size: 4096, dir: 'to_device', as: 'm' },
  { op: 'dma_read', map: 'm', offset: 0, len: 64 },
  { op: 'unmap', map: 'm' },
  { op: 'dma_read', map: 'm', offset: 0, len: 64 },
];

describe('(a) noIotlbSync: a strict unmap leaves the IOTLB stale', () => {
  const json = scenarioJson({ platform: { strict: true }, steps: USE_AFTER_UNMAP });

  it('unbroken: a read after a strict unmap faults with reason 6 on both paths; nothing fails', () => {
    const doc = run(json);
    for (const p of ['legacy-intel', 'dma-iommu'] as const) {
      expect(doc.paths[p].steps[1]).toEqual({ ok: true, data: patternHex(PAGE, 64) });
      expect(doc.paths[p].steps[3]).toMatchObject({ ok: false, fault: { reason: '0x06', type: 'read' } });
    }
    expect(failing(doc, false)).toEqual([]);
  });

  it('broken: legacy faults 0x06, the generic device still reads the page: an "exposure" that fails the gate', () => {
    const doc = run(json, { noIotlbSync: true });
    expect(doc.paths['legacy-intel'].steps[3]).toMatchObject({ ok: false, fault: { reason: '0x06', type: 'read' } });
    expect(doc.paths['dma-iommu'].steps[3]).toEqual({ ok: true, data: patternHex(PAGE, 64) });
    const exposure = doc.divergences.filter((d) => d.kind === 'exposure');
    expect(exposure.map((d) => [d.step, d.allowlisted])).toEqual([[3, undefined]]);
    expect(failing(doc, false).some((d) => d.kind === 'exposure' && d.step === 3)).toBe(true);
  });
});

describe('(b) noIotlbSyncMap: under caching mode the new mapping is never notified', () => {
  const json = scenarioJson({
    platform: { cachingMode: true },
    steps: [
      { op: 'map_page', dev: 'dev', phys: '0x3400000', size: 4096, dir: 'to_device', as: 'm' },
      { op: 'dma_read', map: 'm', offset: 0, len: 64 },
    ],
  });

  it('unbroken: both devices read the page; nothing fails', () => {
    const doc = run(json);
    for (const p of ['legacy-intel', 'dma-iommu'] as const) expect(doc.paths[p].steps[1]).toEqual({ ok: true, data: patternHex(PAGE, 64) });
    expect(failing(doc, false)).toEqual([]);
  });

  it('broken: the first generic access to the fresh IOVA faults (non-present leaf): a "device-read" divergence', () => {
    const doc = run(json, { noIotlbSyncMap: true });
    expect(doc.paths['legacy-intel'].steps[1]).toEqual({ ok: true, data: patternHex(PAGE, 64) });
    expect(doc.paths['dma-iommu'].steps[1]).toMatchObject({ ok: false, fault: { type: 'read' } });
    const dr = doc.divergences.filter((d) => d.kind === 'device-read');
    expect(dr.map((d) => [d.step, d.allowlisted])).toEqual([[1, undefined]]);
    expect(failing(doc, false).some((d) => d.kind === 'device-read')).toBe(true);
  });
});

describe('(c) noBouncePaddingZero: the bounce slot padding keeps what the slot held', () => {
  // an untrusted device's sub-page buffer: bounced into a page-aligned swiotlb slot; for
  // to_device the data is copied in and the rest of the page zeroed (5.10 bounce_map_single
  // "Cleanup the padding area"; 6.1 iommu_dma_map_page)
  const BUF = 0x3402100;
  const json = scenarioJson({
    devices: [{ ...DEV, untrusted: true }],
    steps: [
      { op: 'map_page', dev: 'dev', phys: '0x3402100', size: 0x200, dir: 'to_device', as: 'm' },
      { op: 'dma_read', map: 'm', offset: 0, len: 4096 },
      { op: 'dma_read', map: 'm', offset: 0x200, len: 0xe00 },
      { op: 'unmap', map: 'm' },
    ],
  });

  it('unbroken: both devices see the buffer then zeros to the end of the page; nothing fails', () => {
    const doc = run(json);
    for (const p of ['legacy-intel', 'dma-iommu'] as const) {
      expect(doc.paths[p].steps[1]).toEqual({ ok: true, data: patternHex(BUF, 0x200) + zeroHex(0xe00) });
      expect(doc.paths[p].steps[2]).toEqual({ ok: true, data: zeroHex(0xe00) });
    }
    expect(failing(doc, false)).toEqual([]);
  });

  it('broken: the generic device reads stale slot bytes past the buffer: "exposure" (outside the buffer), failing', () => {
    const doc = run(json, { noBouncePaddingZero: true });
    const g1 = doc.paths['dma-iommu'].steps[1]!;
    expect(g1.ok).toBe(true);
    expect(g1.data!.slice(0, 0x400)).toBe(patternHex(BUF, 0x200));
    expect(g1.data!.slice(0x400)).not.toBe(zeroHex(0xe00));
    const exposure = doc.divergences.filter((d) => d.kind === 'exposure');
    expect(exposure.map((d) => [d.step, d.allowlisted])).toEqual([
      [1, undefined],
      [2, undefined],
    ]);
    expect(doc.divergences.some((d) => d.kind === 'device-read')).toBe(false);
    expect(failing(doc, false).filter((d) => d.kind === 'exposure')).toHaveLength(2);
  });
});

describe('(d) mergeIgnoresMaxSeg: __finalise_sg merges past max_seg_size', () => {
  // strict-main step 54: max_seg_size 4096, three scattered pages; the real 6.1 returned 3 segments
  const sg = [
    { phys: '0x3450000', length: 4096 },
    { phys: '0x3452000', length: 4096 },
    { phys: '0x3454000', length: 4096 },
  ];
  const json = scenarioJson({
    devices: [{ ...DEV, maxSegSize: 4096 }],
    steps: [
      { op: 'map_sg', dev: 'dev', dir: 'to_device', sg, as: 's' },
      { op: 'dma_read', map: 's', offset: 0, len: 12288 },
      { op: 'unmap', map: 's' },
    ],
  });

  it('the recording agrees: 6.1 did not merge these entries under a 4 KiB max_seg_size', () => {
    const c = loadFixture('strict-main');
    const steps = c.scenario['steps'] as StepJson[];
    expect(steps[53]).toMatchObject({ op: 'set_max_seg_size', size: 4096 });
    expect(steps[54]).toMatchObject({ op: 'map_sg', sg });
    expect(c.expect['dma-iommu']!.find((e) => e.step === 54)).toMatchObject({ count: 3 });
  });

  it('unbroken: three segments on both paths, the same bytes; nothing fails', () => {
    const doc = run(json);
    for (const p of ['legacy-intel', 'dma-iommu'] as const) {
      expect(doc.paths[p].steps[0]).toMatchObject({ ok: true, count: 3 });
      expect(doc.paths[p].steps[1]).toEqual({ ok: true, data: patternHex(0x3450000, 4096) + patternHex(0x3452000, 4096) + patternHex(0x3454000, 4096) });
    }
    expect(doc.divergences.filter((d) => d.kind !== 'trace')).toEqual([]);
    expect(failing(doc, false)).toEqual([]);
  });

  it('broken: one 12288-byte segment: sg-count (D1) plus an unallowlisted max-seg sg-limits on dma-iommu', () => {
    const doc = run(json, { mergeIgnoresMaxSeg: true });
    expect(doc.paths['dma-iommu'].steps[0]).toMatchObject({ ok: true, count: 1, segments: [{ len: 12288 }] });
    const atMap = doc.divergences.filter((d) => d.step === 0 && d.kind !== 'trace' && d.kind !== 'reachable');
    expect(atMap.map((d) => d.kind).sort()).toEqual(['sg-count', 'sg-limits']);
    expect(atMap.find((d) => d.kind === 'sg-count')!.allowlisted).toBe('D1');
    const lim = atMap.find((d) => d.kind === 'sg-limits')!;
    // the first entry (4096) does not exceed max_seg_size: not the kernel's unsigned-arithmetic case
    expect(lim).toMatchObject({ path: 'dma-iommu', rule: 'max-seg', firstEntryExceeds: false });
    expect(lim.allowlisted).toBeUndefined();
    expect(failing(doc, false).map((d) => d.kind)).toContain('sg-limits');
  });
});

describe('(e) lazyUntrusted: an untrusted device gets a flush-queue domain (v5.11-v5.14)', () => {
  // a page-aligned whole page: not bounced on either path
  const json = scenarioJson({ platform: { strict: false }, devices: [{ ...DEV, untrusted: true }], steps: USE_AFTER_UNMAP });

  it('unbroken: untrusted unmaps are always strict, so the dead mapping faults on both paths; nothing fails', () => {
    const doc = run(json);
    for (const p of ['legacy-intel', 'dma-iommu'] as const) {
      expect(doc.paths[p].steps[1]).toEqual({ ok: true, data: patternHex(PAGE, 64) });
      expect(doc.paths[p].steps[3]).toMatchObject({ ok: false, fault: { reason: '0x06', type: 'read' } });
    }
    expect(failing(doc, false)).toEqual([]);
  });

  it('broken: the generic unmap is queued and the stale IOTLB entry still reads: "exposure"', () => {
    const doc = run(json, { lazyUntrusted: true });
    expect(doc.paths['legacy-intel'].steps[3]).toMatchObject({ ok: false, fault: { reason: '0x06', type: 'read' } });
    expect(doc.paths['dma-iommu'].steps[3]).toEqual({ ok: true, data: patternHex(PAGE, 64) });
    const exposure = doc.divergences.filter((d) => d.kind === 'exposure');
    expect(exposure.map((d) => [d.step, d.allowlisted])).toEqual([[3, undefined]]);
    expect(failing(doc, false).some((d) => d.kind === 'exposure')).toBe(true);
  });

  it('trusted devices in lazy mode are not affected by the switch (it is about untrusted ones)', () => {
    const trusted = scenarioJson({ platform: { strict: false }, steps: USE_AFTER_UNMAP });
    const off = run(trusted);
    const on = run(trusted, { lazyUntrusted: true });
    expect(on.paths['dma-iommu'].steps).toEqual(off.paths['dma-iommu'].steps);
    expect(on.divergences).toEqual(off.divergences);
  });
});
