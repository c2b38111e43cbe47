/**
 * Untrusted devices on the generic path (Linux 6.1.192; kernel-semantics 9.4.3, 9.4.4, 9.4.5,
 * 9.4.7, 9.2.1, 9.8).
 *
 *  - dev_use_swiotlb (PCI and pdev->untrusted) and (phys | size) not granule-aligned: bounce
 *    through swiotlb_tbl_map_single(phys, size, ALIGN(size, 4096), alloc_align_mask 0xfff), so the
 *    slot is 4 KiB-aligned (stride 2 slots; the pool starts page-aligned at 0x7beb3000), the
 *    original is always copied in, then the padding is zeroed with the pre-v6.10 rule: TO_DEVICE /
 *    BIDIRECTIONAL zero [size, aligned), FROM_DEVICE zeroes [0, aligned). The slot is mapped with
 *    the unaligned size and the handle is iova + (tlb & 0xfff) = a page-aligned IOVA for edu.
 *  - page-aligned buffers are mapped directly;
 *  - map_sg maps each entry through iommu_dma_map_page: nents segments, no merging;
 *  - sync_single_for_cpu / unmap copy back FROM_DEVICE and BIDIRECTIONAL; sync_for_device copies in;
 *  - iommu_get_def_domain_type gives an untrusted PCI device a strict IOMMU_DOMAIN_DMA domain,
 *    whatever iommu.strict says (c208916fe6c7). The seeded { lazyUntrusted } bug undoes that
 *    (v5.11-v5.14 behaviour, kernel-semantics 7.3); { noBouncePaddingZero } skips the memset.
 */
import { describe, expect, it } from 'vitest';
import {
  EDU_DID,
  P,
  PAGE,
  cpuRead,
  cpuWrite,
  dmaRead,
  dmaWrite,
  fillHex,
  logOf,
  mapPage,
  mapSg,
  patternHex,
  psiLine,
  runSteps,
  sync,
  traceOf,
  unmap,
  unmapLine,
  type DeviceJson,
  type StepJson,
} from './helpers.js';

/** the swiotlb pool as the 6.1 guest placed it: [mem 0x7beb3000-0x7feb3000] */
const SLOT0 = 0x7beb3000;
const UNTRUSTED: DeviceJson = { id: 'dev', bdf: '00:02.0', pci: true, untrusted: true, dmaMask: 64 };
/** strict false everywhere here: untrusted devices must be strict anyway */
const LAZY = { strict: false } as const;

function runU(steps: StepJson[], faults = {}): ReturnType<typeof runSteps> {
  return runSteps({ platform: LAZY, devices: [UNTRUSTED], steps }, faults);
}

describe('a sub-page buffer is bounced to a 4 KiB-aligned slot', () => {
  const steps = [mapPage('a', P + 0x100, 0x200, 'to_device'), dmaRead('a', 0, PAGE)];

  it('the handle is page-aligned: no offset', () => {
    const r = runU(steps);
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(r.model.iovaToPhys(r.model.device('dev'), 0xfffff000n)).toBe(BigInt(SLOT0));
  });

  it('the slot, not the buffer, is mapped, with one page for the unaligned size', () => {
    const r = runU(steps);
    expect(r.model.presentLeaves(r.model.device('dev'))).toEqual([{ iovaPfn: 0xfffff, physPfn: SLOT0 / PAGE, pages: 1, perm: 1 }]);
    expect(r.model.leaks().busySwiotlbSlots).toBe(2);
  });

  it('the device reads the copied bytes, then zeros to the end of the page', () => {
    const r = runU(steps);
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(P + 0x100, 0x200) + fillHex(0, PAGE - 0x200) });
  });

  it('never the neighbours: the buffer page around the data and the next slot are unreachable', () => {
    const r = runU([...steps, dmaRead('a', -16, 16), dmaRead('a', PAGE, 16)]);
    const data = r.results[1]!.data!;
    expect(data).not.toContain(patternHex(P, 16));
    expect(data).not.toContain(patternHex(P + 0x300, 16));
    expect(r.results[2]).toEqual({ ok: false, fault: { reason: '0x06', type: 'read', addr: '0xffffe000' } });
    expect(r.results[3]).toEqual({ ok: false, fault: { reason: '0x06', type: 'read', addr: '0x100000000' } });
  });

  it('a second bounce takes the next 4 KiB-aligned slot (slot 2, 0x7beb4000)', () => {
    const r = runU([mapPage('a', P + 0x100, 0x200, 'to_device'), mapPage('b', P + 0x2010, 0x10, 'to_device'), dmaRead('b', 0, 0x20)]);
    expect(r.results[1]).toEqual({ ok: true, dma: '0xffffe000' });
    expect(r.model.iovaToPhys(r.model.device('dev'), 0xffffe000n)).toBe(BigInt(SLOT0 + PAGE));
    expect(r.results[2]).toEqual({ ok: true, data: patternHex(P + 0x2010, 0x10) + fillHex(0, 0x10) });
  });

  it('a page-aligned address with a sub-page size is bounced too ((phys | size) & 0xfff)', () => {
    const r = runU([mapPage('a', P, 0x200, 'to_device'), dmaRead('a', 0x1f0, 0x20)]);
    expect(r.model.iovaToPhys(r.model.device('dev'), 0xfffff000n)).toBe(BigInt(SLOT0));
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(P + 0x1f0, 0x10) + fillHex(0, 0x10) });
  });

  it('an unaligned page-sized buffer takes one aligned slot pair and one IOVA page', () => {
    const r = runU([mapPage('a', P + 0x100, PAGE, 'to_device'), dmaRead('a', PAGE - 16, 16)]);
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(P + 0x100 + PAGE - 16, 16) });
  });
});

describe('FROM_DEVICE and BIDIRECTIONAL bounces: syncs and unmap copy back', () => {
  it('a FROM_DEVICE bounce shows the device zeros, not the caller\'s data', () => {
    const r = runU([mapPage('a', P + 0x100, 0x200, 'from_device'), dmaRead('a', 0, 0x200)]);
    expect(r.results[1]).toEqual({ ok: true, data: fillHex(0, 0x200) });
  });

  it('sync_for_cpu copies the whole mapping back: written bytes, then the slot\'s zeros', () => {
    const r = runU([
      mapPage('a', P + 0x100, 0x200, 'from_device'),
      dmaWrite('a', 0, 0x80, 0xab),
      cpuRead(P + 0x100, 0x80), // 2: not yet
      sync('a', true),
      cpuRead(P, 0x400), // 4
    ]);
    expect(r.results[2]!.data).toBe(patternHex(P + 0x100, 0x80));
    expect(r.results[4]!.data).toBe(patternHex(P, 0x100) + fillHex(0xab, 0x80) + fillHex(0, 0x180) + patternHex(P + 0x300, 0x100));
  });

  it('unmap copies a BIDIRECTIONAL bounce back once, after the flush, and frees the slots', () => {
    const r = runU([mapPage('a', P + 0x100, 0x200, 'bidirectional'), dmaWrite('a', 0x10, 0x10, 0xcd), unmap('a'), cpuRead(P + 0x100, 0x200)]);
    expect(traceOf(r, 2)).toEqual([unmapLine(0xfffff000n, PAGE, PAGE), psiLine(EDU_DID, 0xfffff000n, 0)]);
    expect(r.results[3]!.data).toBe(patternHex(P + 0x100, 0x10) + fillHex(0xcd, 0x10) + patternHex(P + 0x120, 0x1e0));
    expect(r.model.leaks().busySwiotlbSlots).toBe(0);
  });

  it('a TO_DEVICE unmap copies nothing back', () => {
    // scribble on the slot behind the driver's back (a scenario may not address the pool)
    const r = runSteps({ platform: LAZY, devices: [UNTRUSTED], steps: [mapPage('a', P + 0x100, 0x200, 'to_device'), unmap('a'), cpuRead(P + 0x100, 8)] }, {}, (i, model) => {
      if (i === 0) model.machine.memory.fill(SLOT0, 8, 0x11);
    });
    expect(r.results[2]!.data).toBe(patternHex(P + 0x100, 8));
  });

  it('sync_for_device copies CPU updates of a TO_DEVICE buffer into the slot', () => {
    const r = runU([mapPage('a', P + 0x100, 0x200, 'to_device'), cpuWrite(P + 0x100, 0x10, 0xee), dmaRead('a', 0, 0x10), sync('a', false), dmaRead('a', 0, 0x10)]);
    expect(r.results[2]).toEqual({ ok: true, data: patternHex(P + 0x100, 0x10) });
    expect(r.results[4]).toEqual({ ok: true, data: fillHex(0xee, 0x10) });
  });
});

describe('page-aligned buffers are mapped directly', () => {
  it('the handle translates to the original page: the device reads the original pattern', () => {
    const r = runU([mapPage('a', P, PAGE, 'to_device'), dmaRead('a', 0, 64)]);
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(r.model.iovaToPhys(r.model.device('dev'), 0xfffff000n)).toBe(BigInt(P));
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(P, 64) });
    expect(r.model.leaks().busySwiotlbSlots).toBe(0);
  });

  it('a direct mapping\'s sync does nothing (iova_to_phys is not in the pool)', () => {
    const r = runU([mapPage('a', P, PAGE, 'from_device'), dmaWrite('a', 0, 8, 0x42), sync('a', true), cpuRead(P, 16)]);
    expect(r.results[3]!.data).toBe(fillHex(0x42, 8) + patternHex(P + 8, 8));
  });
});

describe('map_sg bounces each entry separately (iommu_dma_map_sg_swiotlb)', () => {
  it('count = nents, no merging, descending IOVAs, the sub-page entry bounced', () => {
    const r = runU([mapSg('s', [[P + 0x100, 0x200], [P + 2 * PAGE, PAGE], [P + 4 * PAGE, PAGE]], 'to_device')]);
    expect(r.results[0]).toEqual({
      ok: true,
      count: 3,
      segments: [
        { dma: '0xfffff000', len: 0x200 },
        { dma: '0xffffe000', len: 0x1000 },
        { dma: '0xffffd000', len: 0x1000 },
      ],
    });
    const dev = r.model.device('dev');
    expect(r.model.iovaToPhys(dev, 0xfffff000n)).toBe(BigInt(SLOT0));
    expect(r.model.iovaToPhys(dev, 0xffffe000n)).toBe(BigInt(P + 2 * PAGE));
    expect(r.model.iovaToPhys(dev, 0xffffd000n)).toBe(BigInt(P + 4 * PAGE));
  });

  it('page-aligned entries that a trusted device would merge stay separate', () => {
    const sg: Array<[number, number]> = [
      [P, PAGE],
      [P + 2 * PAGE, PAGE],
      [P + 4 * PAGE, PAGE],
    ];
    const u = runU([mapSg('s', sg, 'to_device')]);
    expect(u.results[0]!.count).toBe(3);
    const t = runSteps({ platform: LAZY, steps: [mapSg('s', sg, 'to_device')] });
    expect(t.results[0]!.count).toBe(1);
  });

  it('the device reads the byte stream across the separately mapped entries', () => {
    const r = runU([mapSg('s', [[P + 0x100, 0x200], [P + 2 * PAGE, PAGE]], 'to_device'), dmaRead('s', 0x1f8, 16)]);
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(P + 0x2f8, 8) + patternHex(P + 2 * PAGE, 8) });
  });

  it('unmap_sg unmaps each entry: one unmap event and one PSI per entry', () => {
    const r = runU([mapSg('s', [[P + 0x100, 0x200], [P + 2 * PAGE, PAGE]], 'to_device'), unmap('s')]);
    expect(traceOf(r, 1)).toEqual([
      unmapLine(0xfffff000n, PAGE, PAGE),
      psiLine(EDU_DID, 0xfffff000n, 0),
      unmapLine(0xffffe000n, PAGE, PAGE),
      psiLine(EDU_DID, 0xffffe000n, 0),
    ]);
    expect(r.model.leaks().busySwiotlbSlots).toBe(0);
  });
});

describe('untrusted unmaps are strict even with strict false', () => {
  const steps = [mapPage('a', P, PAGE, 'to_device'), dmaRead('a', 0, 64), unmap('a'), dmaRead('a', 0, 64)];

  it('the unmap flushes at once and the read after it faults', () => {
    const r = runU(steps);
    expect(traceOf(r, 2)).toEqual([unmapLine(0xfffff000n, PAGE, PAGE), psiLine(EDU_DID, 0xfffff000n, 0)]);
    expect(r.results[3]).toEqual({ ok: false, fault: { reason: '0x06', type: 'read', addr: '0xfffff000' } });
    expect(r.model.leaks().queued).toBe(0);
  });

  it('a trusted device on the same platform is lazy (the contrast)', () => {
    const r = runSteps({ platform: LAZY, steps });
    expect(traceOf(r, 2)).toEqual([unmapLine(0xfffff000n, PAGE, PAGE)]);
    expect(r.results[3]).toEqual({ ok: true, data: patternHex(P, 64) });
  });

  it('the seeded lazyUntrusted bug makes the unmap lazy: the cached read after unmap succeeds', () => {
    const r = runU(steps, { lazyUntrusted: true });
    expect(traceOf(r, 2)).toEqual([unmapLine(0xfffff000n, PAGE, PAGE)]);
    expect(r.results[3]).toEqual({ ok: true, data: patternHex(P, 64) });
  });
});

describe('the seeded noBouncePaddingZero bug', () => {
  it('TO_DEVICE: the slot\'s own bytes are visible after the data (the never-written slot keeps its pattern)', () => {
    const steps = [mapPage('a', P + 0x100, 0x200, 'to_device'), dmaRead('a', 0, PAGE)];
    const bad = runU(steps, { noBouncePaddingZero: true });
    expect(bad.results[1]).toEqual({ ok: true, data: patternHex(P + 0x100, 0x200) + patternHex(SLOT0 + 0x200, PAGE - 0x200) });
    const good = runU(steps);
    expect(good.results[1]!.data).not.toBe(bad.results[1]!.data);
  });

  it('FROM_DEVICE: without the memset the device reads the caller\'s buffer that swiotlb copied in', () => {
    const steps = [mapPage('a', P + 0x100, 0x200, 'from_device'), dmaRead('a', 0, 0x200)];
    const bad = runU(steps, { noBouncePaddingZero: true });
    expect(bad.results[1]).toEqual({ ok: true, data: patternHex(P + 0x100, 0x200) });
  });
});

describe('untrusted failure paths', () => {
  const NO_SPACE = [{ start: '0x0', end: '0xffffefff' }];

  it('a FROM_DEVICE bounce whose IOVA allocation fails copies the zeroed slot back (swiotlb_tbl_unmap_single without SKIP_CPU_SYNC)', () => {
    const r = runSteps({
      platform: LAZY,
      devices: [{ ...UNTRUSTED, dmaMask: 32 }],
      reserved: [{ start: '0x0', end: '0xffffffff' }],
      steps: [mapPage('a', P + 0x100, 0x200, 'from_device'), cpuRead(P, 0x400)],
    });
    expect(r.results[0]).toEqual({ ok: false });
    expect(r.results[1]!.data).toBe(patternHex(P, 0x100) + fillHex(0, 0x200) + patternHex(P + 0x300, 0x100));
    expect(r.model.leaks().busySwiotlbSlots).toBe(0);
  });

  it('map_sg: a failing entry unwinds the earlier ones with SKIP_CPU_SYNC and dma_map_sg returns 0', () => {
    // one free page under the 32-bit mask: entry 0 gets it, entry 1 finds none
    const r = runSteps({
      platform: LAZY,
      devices: [{ ...UNTRUSTED, dmaMask: 32 }],
      reserved: NO_SPACE,
      steps: [mapSg('s', [[P + 0x100, 0x200], [P + 0x2100, 0x200]], 'from_device'), cpuRead(P + 0x100, 0x200), cpuRead(P + 0x2100, 0x200)],
    });
    expect(r.results[0]).toEqual({ ok: false });
    expect(traceOf(r, 0)).toEqual([
      `map: IOMMU: iova=0x00000000fffff000 - 0x0000000100000000 paddr=0x${SLOT0.toString(16).padStart(16, '0')} size=4096`,
      unmapLine(0xfffff000n, PAGE, PAGE),
      psiLine(EDU_DID, 0xfffff000n, 0),
    ]);
    // entry 0 unwound with SKIP_CPU_SYNC: its zeroed slot is not copied back
    expect(r.results[1]!.data).toBe(patternHex(P + 0x100, 0x200));
    // entry 1 failed inside iommu_dma_map_page (attrs 0): its zeroed slot is copied back
    expect(r.results[2]!.data).toBe(fillHex(0, 0x200));
    expect(r.model.leaks()).toEqual({ liveIovas: [], presentPtes: [], busySwiotlbSlots: 0, queued: 0 });
  });

  it('a bounce larger than a segment (128 slots) finds no slot: "swiotlb buffer is full" and DMA_MAPPING_ERROR', () => {
    // ALIGN(0x40001, 4096) = 0x41000 = 266240 bytes = 130 slots > IO_TLB_SEGSIZE
    const r = runU([mapPage('a', P + 0x100, 0x40001, 'to_device')]);
    expect(r.results[0]).toEqual({ ok: false });
    expect(logOf(r, 0)).toEqual(['dmadiff 0000:00:02.0: swiotlb buffer is full (sz: 266240 bytes), total 32768 (slots), used 0 (slots)']);
    expect(traceOf(r, 0)).toEqual([]);
  });
});
