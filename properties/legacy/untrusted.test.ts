/**
 * bounce_dma_ops for an untrusted PCI device, as Linux 5.10.262 has them (intel/iommu.c
 * bounce_map_single / bounce_unmap_single / bounce_sync_single / bounce_map_sg, over
 * kernel/dma/swiotlb.c; kernel-semantics 2.10 and 10.10):
 *
 *  - a buffer whose address or size is not page-aligned goes through a swiotlb slot of
 *    ALIGN(size, 4096) bytes: swiotlb_tbl_map_single copies `size` bytes in whatever the
 *    direction, then bounce_map_single zeroes [size, aligned) for to_device/bidirectional and the
 *    whole slot otherwise; aligned_nrpages(0, size) pages of the slot are mapped and the handle
 *    is the IOVA page, with no offset;
 *  - sync_for_device copies the original into the slot (to_device, bidirectional), sync_for_cpu
 *    and unmap copy `size` bytes of the slot back (from_device, bidirectional);
 *  - a page-aligned buffer is mapped directly;
 *  - map_sg bounces each entry on its own (one IOVA each) and returns nents;
 *  - intel_unmap is strict for an untrusted PCI device, even when the domain has a flush queue.
 */
import { describe, expect, it } from 'vitest';
import { SWIOTLB_REGION } from '../../vtd/regions.js';
import {
  EDU,
  FQ_TIMEOUT,
  allocCoherent,
  cpuRead,
  cpuWrite,
  dmaRead,
  dmaWrite,
  fillHex,
  iotlbDescs,
  mapPage,
  mapSg,
  patternHex,
  psiQw1,
  runSteps,
  sync,
  traceOf,
  unmap,
  type ScenarioOptions,
} from './helpers.js';

const UNTRUSTED = { ...EDU, untrusted: true };
const BUF = 0x3402100; // 0x200 bytes in the middle of a page
const PAGE = 0x3402000;

function runU(steps: ScenarioOptions['steps'], platform: ScenarioOptions['platform'] = {}): ReturnType<typeof runSteps> {
  return runSteps({ devices: [UNTRUSTED], platform, steps });
}

function inSwiotlb(pfn: number): boolean {
  return pfn * 4096 >= SWIOTLB_REGION.start && pfn * 4096 < SWIOTLB_REGION.end;
}

describe('a sub-page to_device buffer is bounced', () => {
  const r = runU([mapPage('a', BUF, 0x200, 'to_device'), dmaRead('a', 0, 4096), dmaRead('a', -16, 16)]);

  it('the handle is the IOVA page, without the buffer offset', () => {
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
  });

  it('the device reads the copied bytes then zeros to the page end, never the rest of the original page', () => {
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(BUF, 0x200) + fillHex(0, 0x1000 - 0x200) });
  });

  it('one read-only leaf maps a page of the swiotlb pool, not the original page; nothing before it is mapped', () => {
    const leaves = r.model.presentLeaves(r.model.device('dev'));
    expect(leaves).toHaveLength(1);
    expect(leaves[0]).toMatchObject({ iovaPfn: 0xfffff, pages: 1, perm: 1 });
    expect(inSwiotlb(leaves[0]!.physPfn)).toBe(true);
    expect(r.results[2]).toEqual({ ok: false, fault: { reason: '0x06', type: 'read', addr: '0xffffe000' } });
    // ALIGN(0x200, 4096) = 4096 bytes = 2 slots of 2 KiB
    expect(r.model.machine.swiotlb.usedSlots).toBe(2);
  });
});

describe('a from_device bounce', () => {
  it('the device sees a zeroed slot; its writes reach the buffer only at sync_for_cpu', () => {
    const r = runU([
      mapPage('a', BUF, 0x200, 'from_device'),
      dmaRead('a', 0, 4096),
      dmaWrite('a', 0, 16, 0xab),
      cpuRead(PAGE, 0x400),
      sync('a', true),
      cpuRead(PAGE, 0x400),
      dmaWrite('a', 16, 16, 0xcd),
      unmap('a'),
      cpuRead(PAGE, 0x400),
    ]);
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
    // swiotlb copied the buffer in, then bounce_map_single zeroed the whole slot (from_device)
    expect(r.results[1]).toEqual({ ok: true, data: fillHex(0, 4096) });
    expect(r.results[2]).toEqual({ ok: true });
    expect(r.results[3]).toEqual({ ok: true, data: patternHex(PAGE, 0x400) });
    // sync_for_cpu copies `size` bytes of the slot: the 16 written, then the zeroed rest
    expect(r.results[5]).toEqual({ ok: true, data: patternHex(PAGE, 0x100) + fillHex(0xab, 16) + fillHex(0, 0x200 - 16) + patternHex(BUF + 0x200, 0x100) });
    // unmap copies back again
    expect(r.results[8]).toEqual({
      ok: true,
      data: patternHex(PAGE, 0x100) + fillHex(0xab, 16) + fillHex(0xcd, 16) + fillHex(0, 0x200 - 32) + patternHex(BUF + 0x200, 0x100),
    });
    expect(r.model.machine.swiotlb.usedSlots).toBe(0);
  });

  it('without any sync, unmap copies back: the unwritten rest of the buffer becomes zeros', () => {
    const r = runU([mapPage('a', BUF, 0x200, 'from_device'), dmaWrite('a', 0, 16, 0xab), cpuRead(BUF, 0x200), unmap('a'), cpuRead(PAGE, 0x400)]);
    expect(r.results[2]).toEqual({ ok: true, data: patternHex(BUF, 0x200) });
    expect(r.results[4]).toEqual({ ok: true, data: patternHex(PAGE, 0x100) + fillHex(0xab, 16) + fillHex(0, 0x200 - 16) + patternHex(BUF + 0x200, 0x100) });
  });

  it('sync_for_device copies nothing for from_device', () => {
    const r = runU([mapPage('a', BUF, 0x200, 'from_device'), cpuWrite(BUF, 16, 0x77), sync('a', false), dmaRead('a', 0, 0x200)]);
    expect(r.results[3]).toEqual({ ok: true, data: fillHex(0, 0x200) });
  });
});

describe('sync_for_device and bidirectional bounces', () => {
  for (const dir of ['to_device', 'bidirectional'] as const) {
    it(`sync_for_device copies CPU writes of the original into the slot (${dir})`, () => {
      const r = runU([mapPage('a', BUF, 0x200, dir), cpuWrite(BUF, 16, 0x77), dmaRead('a', 0, 0x200), sync('a', false), dmaRead('a', 0, 0x200)]);
      expect(r.results[2]).toEqual({ ok: true, data: patternHex(BUF, 0x200) });
      expect(r.results[4]).toEqual({ ok: true, data: fillHex(0x77, 16) + patternHex(BUF + 16, 0x200 - 16) });
    });
  }

  it('bidirectional: the slot holds the data (padding zeroed), device writes come back at sync_for_cpu', () => {
    const r = runU([mapPage('a', BUF, 0x200, 'bidirectional'), dmaRead('a', 0, 0x1000), dmaWrite('a', 0, 16, 0x99), sync('a', true), cpuRead(BUF, 0x200)]);
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(BUF, 0x200) + fillHex(0, 0xe00) });
    expect(r.results[4]).toEqual({ ok: true, data: fillHex(0x99, 16) + patternHex(BUF + 16, 0x200 - 16) });
  });
});

describe('what is and is not bounced', () => {
  it('a page-aligned 4096-byte buffer maps the original page directly', () => {
    const r = runU([mapPage('a', 0x3404000, 4096, 'to_device'), dmaRead('a', 0, 4096)]);
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(r.model.presentLeaves(r.model.device('dev'))).toEqual([{ iovaPfn: 0xfffff, physPfn: 0x3404, pages: 1, perm: 1 }]);
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(0x3404000, 4096) });
    expect(r.model.machine.swiotlb.usedSlots).toBe(0);
    expect(traceOf(r, 0)).toEqual(['bounce_map_single: dev=0000:00:02.0 dev_addr=0xfffff000 phys_addr=0x3404000 size=4096']);
  });

  it('an aligned address with a short size is bounced (zero padding after it)', () => {
    const r = runU([mapPage('a', 0x3404000, 0x800, 'to_device'), dmaRead('a', 0, 4096)]);
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(0x3404000, 0x800) + fillHex(0, 0x800) });
    expect(inSwiotlb(r.model.presentLeaves(r.model.device('dev'))[0]!.physPfn)).toBe(true);
    expect(r.model.machine.swiotlb.usedSlots).toBe(2);
  });

  it('a page-sized buffer at an unaligned address is bounced into one page: aligned_nrpages(0, size) = 1', () => {
    const r = runU([mapPage('a', 0x3404800, 0x1000, 'to_device'), dmaRead('a', 0, 0x1000), dmaRead('a', 0x1000, 16)]);
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(0x3404800, 0x1000) });
    expect(r.model.presentLeaves(r.model.device('dev'))).toHaveLength(1);
    expect(r.results[2]).toEqual({ ok: false, fault: { reason: '0x06', type: 'read', addr: '0x100000000' } });
  });

  it('coherent buffers are never bounced (both ops tables use intel_alloc_coherent)', () => {
    const r = runU([allocCoherent('c', 0x1000), dmaRead('c', 0, 0x1000)]);
    expect(r.results[0]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(r.results[1]).toEqual({ ok: true, data: fillHex(0, 0x1000) });
    expect(r.model.machine.swiotlb.usedSlots).toBe(0);
    expect(traceOf(r, 0)).toHaveLength(1);
    expect(traceOf(r, 0)[0]).toMatch(/^map_single: dev=0000:00:02\.0 dev_addr=0xfffff000 phys_addr=0x[0-9a-f]+000 size=4096$/);
  });
});

describe('bounce map_sg', () => {
  const sg: Array<[number, number]> = [
    [BUF, 0x200],
    [0x3404000, 0x1000],
    [0x3406800, 0x1000],
  ];

  it('maps each entry separately: distinct IOVAs, page-aligned handles, count = nents', () => {
    const r = runU([mapSg('s', sg, 'to_device'), dmaRead('s', 0, 0x2200), unmap('s')]);
    expect(r.results[0]).toEqual({
      ok: true,
      count: 3,
      segments: [
        { dma: '0xfffff000', len: 0x200 },
        { dma: '0xffffe000', len: 0x1000 },
        { dma: '0xffffd000', len: 0x1000 },
      ],
    });
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(BUF, 0x200) + patternHex(0x3404000, 0x1000) + patternHex(0x3406800, 0x1000) });
    expect(r.model.leaks()).toEqual({ liveIovas: [], presentPtes: [], busySwiotlbSlots: 0, queued: 0 });
  });

  it('the two unaligned entries hold 2 slots each, the aligned one none; the aligned one maps its own page', () => {
    const r = runU([mapSg('s', sg, 'to_device')]);
    expect(r.model.machine.swiotlb.usedSlots).toBe(4);
    const leaves = r.model.presentLeaves(r.model.device('dev'));
    expect(leaves.map((l) => l.iovaPfn)).toEqual([0xffffd, 0xffffe, 0xfffff]);
    expect(leaves[1]!.physPfn).toBe(0x3404);
    expect(inSwiotlb(leaves[0]!.physPfn) && inSwiotlb(leaves[2]!.physPfn)).toBe(true);
  });
});

describe('bounce sg syncs', () => {
  it('sync_for_cpu copies each bounced entry back by its DMA address and length; direct entries need none', () => {
    const r = runU([
      mapSg('s', [[BUF, 0x200], [0x3404000, 0x1000]], 'from_device'),
      dmaWrite('s', 0, 0x210, 0xee),
      cpuRead(BUF, 0x200),
      cpuRead(0x3404000, 0x20),
      sync('s', true),
      cpuRead(BUF, 0x200),
    ]);
    expect(r.results[0]).toMatchObject({ ok: true, count: 2 });
    expect(r.results[2]).toEqual({ ok: true, data: patternHex(BUF, 0x200) });
    expect(r.results[3]).toEqual({ ok: true, data: fillHex(0xee, 0x10) + patternHex(0x3404010, 0x10) });
    expect(r.results[5]).toEqual({ ok: true, data: fillHex(0xee, 0x200) });
  });
});

describe('unmaps of an untrusted device are strict even in lazy mode', () => {
  it('PSI at unmap, immediate fault, immediate reuse, nothing queued', () => {
    const r = runU(
      [mapPage('a', BUF, 0x200, 'to_device'), dmaRead('a', 0, 64), unmap('a'), dmaRead('a', 0, 64), mapPage('b', 0x3404000, 4096, 'to_device'), unmap('b'), FQ_TIMEOUT],
      { strict: false },
    );
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(BUF, 64) });
    expect(iotlbDescs(r.qi[2]!)).toEqual([[0x400f2n, psiQw1(0xfffff, 0)]]);
    expect(r.results[3]).toEqual({ ok: false, fault: { reason: '0x06', type: 'read', addr: '0xfffff000' } });
    expect(r.results[4]).toEqual({ ok: true, dma: '0xfffff000' });
    // a mapping that was not bounced is unmapped strictly too
    expect(iotlbDescs(r.qi[5]!)).toEqual([[0x400f2n, psiQw1(0xfffff, 0)]]);
    expect(r.qi[6]).toEqual([]);
    expect(r.model.leaks().queued).toBe(0);
  });
});

describe('bounce failures (swiotlb: at most one 128-slot segment per mapping)', () => {
  const FULL = 'dmadiff 0000:00:02.0: swiotlb buffer is full (sz: 524288 bytes), total 32768 (slots), used 0 (slots)';

  it('an unaligned 512 KiB buffer needs 256 slots: "swiotlb buffer is full", "Device bounce map ... failed", IOVA freed', () => {
    const r = runU([mapPage('big', 0x10000100, 0x80000, 'to_device'), mapPage('a', 0x3404000, 4096, 'to_device')]);
    expect(r.results[0]).toEqual({ ok: false });
    // dev_warn has no dev_fmt in swiotlb.c (no "software IO TLB: "); dev_err in intel/iommu.c has DMAR:
    expect(r.model.machine.log.lines.filter((l) => l.step === 0).map((l) => l.text)).toEqual([FULL, 'dmadiff 0000:00:02.0: DMAR: Device bounce map: 80000@10000100 dir 1 --- failed']);
    expect(traceOf(r, 0)).toEqual([]);
    // the 128-page IOVA went back to the tree (class 7 is not cached) and cached32 with it
    expect(r.results[1]).toEqual({ ok: true, dma: '0xfffff000' });
    expect(r.model.leaks()).toMatchObject({ busySwiotlbSlots: 0 });
  });

  it('map_sg undoes the entries already bounced with SKIP_CPU_SYNC: nothing is copied back', () => {
    const r = runU([mapSg('s', [[BUF, 0x200], [0x10000100, 0x80000]], 'from_device'), cpuRead(BUF, 0x200)]);
    expect(r.results[0]).toEqual({ ok: false });
    const D = 'dev=0000:00:02.0';
    expect(traceOf(r, 0)).toEqual([
      `bounce_map_single: ${D} dev_addr=0xfffff000 phys_addr=0x3402100 size=512`,
      `unmap_single: ${D} dev_addr=0xfffff000 size=512`,
      `bounce_unmap_single: ${D} dev_addr=0xfffff000 size=512`,
    ]);
    // a from_device slot is all zeros: had it been copied back, the buffer would read zeros
    expect(r.results[1]).toEqual({ ok: true, data: patternHex(BUF, 0x200) });
    expect(r.model.leaks()).toEqual({ liveIovas: [], presentPtes: [], busySwiotlbSlots: 0, queued: 0 });
  });
});
