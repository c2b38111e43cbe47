/**
 * The generic path's seeded bugs, one switch at a time: with the switch off the model does what
 * Linux 6.1.192 does (kernel-semantics 9.3, 9.4.3-9.4.7, 9.8), with it on it makes exactly the
 * one mistake the switch names. Every expectation is written out by hand from those rules.
 *
 * Platform: the recordings' defaults (aw 39, strict, no CM), one CPU, the IOAPIC window reserved.
 * An untrusted edu at 00:02.0 bounces a sub-page buffer through a 4 KiB-aligned swiotlb slot
 * (the first one at 0x7beb3000, the next at 0x7beb4000) mapped at IOVA 0xfffff000, then 0xffffe000.
 */
import { describe, expect, it } from 'vitest';
import type { SeededBugs } from '../../harness/run/paths.js';
import {
  P,
  PAGE,
  cpuRead,
  dmaRead,
  dmaWrite,
  fillHex,
  logOf,
  mapLine,
  mapPage,
  mapSg,
  patternHex,
  runSteps,
  sync,
  traceOf,
  unmap,
  type DeviceJson,
  type StepJson,
} from './helpers.js';

const SLOT0 = 0x7beb3000;
const UNTRUSTED: DeviceJson = { id: 'dev', bdf: '00:02.0', pci: true, untrusted: true, dmaMask: 64 };

function runU(steps: StepJson[], faults: SeededBugs = {}): ReturnType<typeof runSteps> {
  return runSteps({ devices: [UNTRUSTED], steps }, faults);
}

describe('syncSgWholeList (iommu_dma_sync_sg_for_cpu on a bounced list)', () => {
  // entry 0: 0x200 bytes at P+0x100 (slot 0, 0x1000 allocated); entry 1: 0xf00 bytes at P+0x2100
  const steps = [
    mapSg('s', [[P + 0x100, 0x200], [P + 0x2100, 0xf00]], 'from_device'),
    dmaWrite('s', 0, 0x200, 0xab), // entry 0
    dmaWrite('s', 0x200, 0xf00, 0xcd), // entry 1
    sync('s', true), // 3
    cpuRead(P, 0x1200), // 4: entry 0 and the page after it
    cpuRead(P + 0x2100, 0xf00), // 5: entry 1
  ];

  it('off: each entry is copied back with its own length; nothing around entry 0 changes', () => {
    const r = runU(steps);
    expect(r.results[4]!.data).toBe(patternHex(P, 0x100) + fillHex(0xab, 0x200) + patternHex(P + 0x300, 0xf00));
    expect(r.results[5]!.data).toBe(fillHex(0xcd, 0xf00));
    expect(logOf(r, 3)).toEqual([]);
  });

  it('on: one sync of 0x1100 bytes from slot 0, clamped to its 0x1000: the padding lands after entry 0, entry 1 is not synced', () => {
    const r = runU(steps, { syncSgWholeList: true });
    expect(r.results[4]!.data).toBe(patternHex(P, 0x100) + fillHex(0xab, 0x200) + fillHex(0, 0xe00) + patternHex(P + 0x1100, 0x100));
    expect(r.results[5]!.data).toBe(patternHex(P + 0x2100, 0xf00));
    expect(logOf(r, 3)).toEqual(['dmadiff 0000:00:02.0: Buffer overflow detected. Allocation size: 4096. Mapping size: 4352.']);
  });
});

describe('unmapCopyBackFromDeviceOnly (iommu_dma_unmap_page of a bounce)', () => {
  const bidi = [mapPage('a', P + 0x100, 0x200, 'bidirectional'), dmaWrite('a', 0x10, 0x10, 0xcd), unmap('a'), cpuRead(P + 0x100, 0x200)];
  const fromDev = [mapPage('a', P + 0x100, 0x200, 'from_device'), dmaWrite('a', 0x10, 0x10, 0xcd), unmap('a'), cpuRead(P + 0x100, 0x200)];

  it('off: a BIDIRECTIONAL bounce is copied back at unmap', () => {
    const r = runU(bidi);
    expect(r.results[3]!.data).toBe(patternHex(P + 0x100, 0x10) + fillHex(0xcd, 0x10) + patternHex(P + 0x120, 0x1e0));
    expect(r.model.leaks().busySwiotlbSlots).toBe(0);
  });

  it('on: the BIDIRECTIONAL device write is lost (the caller keeps its old bytes); the slots are still freed', () => {
    const r = runU(bidi, { unmapCopyBackFromDeviceOnly: true });
    expect(r.results[3]!.data).toBe(patternHex(P + 0x100, 0x200));
    expect(r.model.leaks().busySwiotlbSlots).toBe(0);
  });

  it('on: FROM_DEVICE is still copied back (the zeroed slot and the device write)', () => {
    const r = runU(fromDev, { unmapCopyBackFromDeviceOnly: true });
    expect(r.results[3]!.data).toBe(fillHex(0, 0x10) + fillHex(0xcd, 0x10) + fillHex(0, 0x1e0));
  });
});

describe('unmapCopyBackAligned (iommu_dma_unmap_page of a bounce)', () => {
  const steps = [mapPage('a', P + 0x100, 0x200, 'bidirectional'), dmaWrite('a', 0, 0x200, 0xcd), unmap('a'), cpuRead(P, 0x1200)];

  it('off: exactly the caller\'s 0x200 bytes are copied back', () => {
    const r = runU(steps);
    expect(r.results[3]!.data).toBe(patternHex(P, 0x100) + fillHex(0xcd, 0x200) + patternHex(P + 0x300, 0xf00));
  });

  it('on: the whole 0x1000 slot is copied back: 0xe00 bytes of zero padding overwrite what follows the buffer', () => {
    const r = runU(steps, { unmapCopyBackAligned: true });
    expect(r.results[3]!.data).toBe(patternHex(P, 0x100) + fillHex(0xcd, 0x200) + fillHex(0, 0xe00) + patternHex(P + 0x1100, 0x100));
    expect(r.model.leaks().busySwiotlbSlots).toBe(0);
  });
});

describe('syncForDeviceWholeSlot (iommu_dma_sync_single_for_device of a bounce)', () => {
  const steps = [mapPage('a', P + 0x100, 0x200, 'to_device'), sync('a', false), dmaRead('a', 0, PAGE)];

  it('off: the slot gets the caller\'s 0x200 bytes again; the padding stays zero', () => {
    const r = runU(steps);
    expect(r.results[2]).toEqual({ ok: true, data: patternHex(P + 0x100, 0x200) + fillHex(0, PAGE - 0x200) });
  });

  it('on: the whole page is refilled from the buffer: the device reads the 0xe00 bytes after it', () => {
    const r = runU(steps, { syncForDeviceWholeSlot: true });
    expect(r.results[2]).toEqual({ ok: true, data: patternHex(P + 0x100, PAGE) });
  });
});

describe('noMapTraceAtomic (iommu_map_atomic)', () => {
  const steps = [mapPage('a', P, PAGE, 'to_device'), mapSg('s', [[P + 2 * PAGE, PAGE]], 'to_device'), dmaRead('a', 0, 16)];

  it('off: map_page traces its iommu:map event', () => {
    const r = runSteps({ steps });
    expect(traceOf(r, 0)).toEqual([mapLine(0xfffff000n, BigInt(P), PAGE)]);
    expect(traceOf(r, 1)).toEqual([mapLine(0xffffe000n, BigInt(P + 2 * PAGE), PAGE)]);
  });

  it('on: map_page maps (the device reads the buffer) but traces nothing; map_sg still traces', () => {
    const r = runSteps({ steps }, { noMapTraceAtomic: true });
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(traceOf(r, 0)).toEqual([]);
    expect(traceOf(r, 1)).toEqual([mapLine(0xffffe000n, BigInt(P + 2 * PAGE), PAGE)]);
    expect(r.results[2]).toEqual({ ok: true, data: patternHex(P, 16) });
  });
});

describe('bounceTracesOriginal (iommu_dma_map_page of a bounce)', () => {
  const steps = [mapPage('a', P + 0x100, 0x200, 'to_device')];

  it('off: one map event, of the slot', () => {
    const r = runU(steps);
    expect(traceOf(r, 0)).toEqual([mapLine(0xfffff000n, BigInt(SLOT0), PAGE)]);
  });

  it('on: the slot\'s event, then one naming the caller\'s page at the same IOVA', () => {
    const r = runU(steps, { bounceTracesOriginal: true });
    expect(traceOf(r, 0)).toEqual([mapLine(0xfffff000n, BigInt(SLOT0), PAGE), mapLine(0xfffff000n, BigInt(P), PAGE)]);
  });

  it('on: a page-aligned buffer is not bounced and gets only its own event', () => {
    const r = runU([mapPage('a', P, PAGE, 'to_device')], { bounceTracesOriginal: true });
    expect(traceOf(r, 0)).toEqual([mapLine(0xfffff000n, BigInt(P), PAGE)]);
  });

  it('on: a bounce whose IOVA allocation fails traces nothing', () => {
    const r = runSteps(
      { devices: [{ ...UNTRUSTED, dmaMask: 32 }], reserved: [{ start: '0x0', end: '0xffffffff' }], steps: [mapPage('a', P + 0x100, 0x200, 'to_device')] },
      { bounceTracesOriginal: true },
    );
    expect(r.results[0]).toEqual({ ok: false });
    expect(traceOf(r, 0)).toEqual([]);
  });
});
