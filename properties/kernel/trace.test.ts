/**
 * kernel/trace.ts: the event texts, byte for byte, against literal lines of the real-kernel
 * recording (fixture copy of shared/oracle/strict-main.json, trace.events; kernel-semantics 9.6,
 * 10.11), and the trace ring itself.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SimClock, formatTimestamp } from '../../kernel/clock.js';
import { TraceRing, fmtDmaMap, fmtDmaMapSg, fmtDmaUnmap, fmtIommuMap, fmtIommuUnmap, fmtQiSubmit, renderTraceLine } from '../../kernel/trace.js';

interface TraceFile {
  trace: { events: Record<'legacy-intel' | 'dma-iommu', Array<{ event: string; text: string }>> };
}

const recorded = (JSON.parse(readFileSync(new URL('../fixtures/oracle/strict-main.json', import.meta.url), 'utf8')) as TraceFile).trace.events;

/** The literal must really be a line of the recording (event name and text). */
function inRecording(path: 'legacy-intel' | 'dma-iommu', event: string, text: string): boolean {
  return recorded[path].some((e) => e.event === event && e.text === text);
}

const EDU = '0000:00:02.0';

describe('5.10 intel_iommu events (include/trace/events/intel_iommu.h)', () => {
  it('map_single: the 0xff0 + 0x20 map, size = 2 pages', () => {
    const line = 'dev=0000:00:02.0 dev_addr=0xffffaff0 phys_addr=0x3403ff0 size=8192';
    expect(inRecording('legacy-intel', 'map_single', line)).toBe(true);
    expect(fmtDmaMap(EDU, 0xffffaff0n, 0x3403ff0n, 8192)).toBe(line);
  });

  it('map_single of the first page', () => {
    const line = 'dev=0000:00:02.0 dev_addr=0xfffff000 phys_addr=0x3400000 size=4096';
    expect(inRecording('legacy-intel', 'map_single', line)).toBe(true);
    expect(fmtDmaMap(EDU, 0xfffff000n, 0x3400000n, 4096)).toBe(line);
  });

  it('map_sg: "[index/total]"', () => {
    const line = 'dev=0000:00:02.0 [2/3] dev_addr=0xffff5000 phys_addr=0x3452000 size=4096';
    expect(inRecording('legacy-intel', 'map_sg', line)).toBe(true);
    expect(fmtDmaMapSg(EDU, 2, 3, 0xffff5000n, 0x3452000n, 4096)).toBe(line);
    const line2 = 'dev=0000:00:02.0 [2/3] dev_addr=0xfffa5010 phys_addr=0x3470010 size=4080';
    expect(inRecording('legacy-intel', 'map_sg', line2)).toBe(true);
    expect(fmtDmaMapSg(EDU, 2, 3, 0xfffa5010n, 0x3470010n, 4080)).toBe(line2);
  });

  it('unmap_single keeps the caller\'s unaligned address and size; unmap_sg uses the same class', () => {
    const line = 'dev=0000:00:02.0 dev_addr=0xffffd100 size=512';
    expect(inRecording('legacy-intel', 'unmap_single', line)).toBe(true);
    expect(fmtDmaUnmap(EDU, 0xffffd100n, 512)).toBe(line);
    const sg = 'dev=0000:00:02.0 dev_addr=0xffff4000 size=12288';
    expect(inRecording('legacy-intel', 'unmap_sg', sg)).toBe(true);
    expect(fmtDmaUnmap(EDU, 0xffff4000n, 12288)).toBe(sg);
  });
});

describe('6.1 iommu and intel_iommu events', () => {
  it('iommu:map prints "iova=START - END" with 16 hex digits each', () => {
    const line = 'IOMMU: iova=0x00000000fffff000 - 0x0000000100000000 paddr=0x0000000003400000 size=4096';
    expect(inRecording('dma-iommu', 'map', line)).toBe(true);
    expect(fmtIommuMap(0xfffff000n, 0x3400000n, 4096)).toBe(line);
    const sg = 'IOMMU: iova=0x00000000fff88000 - 0x00000000fff91000 paddr=0x00000000034aa000 size=36864';
    expect(inRecording('dma-iommu', 'map', sg)).toBe(true);
    expect(fmtIommuMap(0xfff88000n, 0x34aa000n, 36864)).toBe(sg);
  });

  it('iommu:unmap adds unmapped_size', () => {
    const line = 'IOMMU: iova=0x00000000ffff4000 - 0x00000000ffff7000 size=12288 unmapped_size=12288';
    expect(inRecording('dma-iommu', 'unmap', line)).toBe(true);
    expect(fmtIommuUnmap(0xffff4000n, 12288, 12288)).toBe(line);
    const first = 'IOMMU: iova=0x00000000fffff000 - 0x0000000100000000 size=4096 unmapped_size=4096';
    expect(inRecording('dma-iommu', 'unmap', first)).toBe(true);
    expect(fmtIommuUnmap(0xfffff000n, 4096, 4096)).toBe(first);
    // a short unmap prints both sizes as they are (derived from the format, not recorded)
    expect(fmtIommuUnmap(0x1000n, 0x3000, 0x1000)).toBe('IOMMU: iova=0x0000000000001000 - 0x0000000000004000 size=12288 unmapped_size=4096');
  });

  it('intel_iommu:qi_submit: type name, IOMMU, four words in unpadded hex', () => {
    const psi = 'iotlb_inv dmar0: 0x400f2 0xffff4002 0x0 0x0';
    expect(inRecording('dma-iommu', 'qi_submit', psi)).toBe(true);
    expect(fmtQiSubmit('iotlb_inv', 'dmar0', [0x400f2n, 0xffff4002n, 0n, 0n])).toBe(psi);
    const one = 'iotlb_inv dmar0: 0x400f2 0xfffff000 0x0 0x0';
    expect(inRecording('dma-iommu', 'qi_submit', one)).toBe(true);
    expect(fmtQiSubmit('iotlb_inv', 'dmar0', [0x400f2n, 0xfffff000n, 0n, 0n])).toBe(one);
    // a DSI from the flush-queue timer (kernel-semantics 9.2.2)
    expect(fmtQiSubmit('iotlb_inv', 'dmar0', [0x400e2n, 0n, 0n, 0n])).toBe('iotlb_inv dmar0: 0x400e2 0x0 0x0 0x0');
  });

  it('64-bit values print unsigned: DMA_MAPPING_ERROR is 0xffffffffffffffff', () => {
    expect(fmtDmaUnmap(EDU, -1n, 0)).toBe('dev=0000:00:02.0 dev_addr=0xffffffffffffffff size=0');
    expect(fmtIommuMap(0xfffffffffffff000n, 0n, 4096)).toBe('IOMMU: iova=0xfffffffffffff000 - 0x0000000000000000 paddr=0x0000000000000000 size=4096');
  });
});

describe('TraceRing', () => {
  it('records step, cpu, clock time, system, event and text; renderTraceLine gives the ftrace line', () => {
    const clock = new SimClock();
    const ring = new TraceRing('6.1', clock);
    clock.advance(2_199_470_123);
    ring.step = 14;
    ring.cpu = 0;
    ring.emit('iommu', 'map', fmtIommuMap(0xfffff000n, 0x3400000n, 4096));
    expect(ring.events.map((e) => e.toJSON())).toEqual([
      {
        step: 14,
        cpu: 0,
        tsNs: 2_199_470_123,
        system: 'iommu',
        event: 'map',
        text: 'IOMMU: iova=0x00000000fffff000 - 0x0000000100000000 paddr=0x0000000003400000 size=4096',
      },
    ]);
    // "<task>-<pid> [cpu] <flags> <secs>.<usecs>: <event>: <text>" (kernel-semantics 9.6)
    expect(renderTraceLine(ring.events[0]!)).toBe(
      'dmadiff-1 [000] ..... 2.199470: map: IOMMU: iova=0x00000000fffff000 - 0x0000000100000000 paddr=0x0000000003400000 size=4096',
    );
    expect(renderTraceLine({ ...ring.events[0]!.toJSON(), cpu: 3 }, 'insmod', 812)).toMatch(/^insmod-812 \[003\] \.\.\.\.\. 2\.199470: map: IOMMU: /);
  });

  it('timestamps are secs.usecs with six digits', () => {
    expect(formatTimestamp(0)).toBe('0.000000');
    expect(formatTimestamp(10_000_000)).toBe('0.010000');
    expect(formatTimestamp(2_212_531_999)).toBe('2.212531');
    expect(formatTimestamp(61_000_001_000)).toBe('61.000001');
  });

  it('the swiotlb system is disabled by default: emit records nothing; iommu and intel_iommu are on', () => {
    for (const rel of ['5.10', '6.1'] as const) {
      const ring = new TraceRing(rel, new SimClock());
      expect(ring.enabled).toEqual({ iommu: true, intel_iommu: true, swiotlb: false });
      ring.emit('swiotlb', 'swiotlb_bounced', 'dev_name: 0000:00:02.0 dma_mask=ffffffffffffffff dev_addr=3402100 size=512 NORMAL');
      expect(ring.events).toEqual([]);
      ring.emit('intel_iommu', 'qi_submit', 'iotlb_inv dmar0: 0x400f2 0xfffff000 0x0 0x0');
      expect(ring.events.length).toBe(1);
      // switching a system off silences it
      ring.enabled.intel_iommu = false;
      ring.emit('intel_iommu', 'qi_submit', 'x');
      expect(ring.events.length).toBe(1);
    }
  });
});
