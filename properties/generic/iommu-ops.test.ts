/**
 * The IOMMU core over a driver that is not VT-d: a recording IommuOps whose page sizes we choose,
 * driven through IommuCore. What 6.1's iommu.c calls for each request is written out by hand
 * (iommu_pgsize: the largest page in the bitmap that the size and the alignment of iova | paddr
 * allow, stopping at the next larger page's boundary when iova and paddr share their offset in
 * it), so a second driver could stand beside the VT-d one without the core changing.
 */
import { describe, expect, it } from 'vitest';
import { IommuCore } from '../../dma-iommu/iommu.js';
import { gatherInit, iommuIotlbGatherAddPage, type IommuDomain, type IommuOps, type IotlbGather, type MapPagesResult } from '../../dma-iommu/iommu-ops.js';
import { SimClock } from '../../kernel/clock.js';
import { sgFromBuffers } from '../../kernel/scatterlist.js';
import { TraceRing } from '../../kernel/trace.js';

const hex = (v: bigint | number): string => `0x${v.toString(16)}`;

interface FakeDomain extends IommuDomain {
  id: number;
}

/** A driver that maps whatever it is given (or fails where told) and writes down every call. */
class RecordingOps implements IommuOps {
  readonly calls: string[] = [];
  /** map_pages fails with this errno at this call (1-based), mapping nothing */
  failAt = 0;
  failWith = 0;
  private mapCalls = 0;

  constructor(
    readonly pgsizeBitmap: number,
    /** sizes attach_dev adds to the domain, as VT-d adds its superpage sizes */
    private readonly attachAdds = 0,
    /** unmap_pages always clears at least this much (a larger page found at iova) */
    private readonly leafSize = 0,
  ) {}

  domainAlloc(did: number): FakeDomain {
    this.calls.push(`domain_alloc ${did}`);
    return { id: did, pgsizeBitmap: 0, apertureEnd: (1n << 48n) - 1n };
  }

  attachDev(d: IommuDomain, sid: number): number {
    this.calls.push(`attach_dev ${(d as FakeDomain).id} ${hex(sid)}`);
    d.pgsizeBitmap |= this.attachAdds;
    return 0;
  }

  mapPages(_d: IommuDomain, iova: bigint, paddr: bigint, pgsize: number, pgcount: number, prot: number): MapPagesResult {
    this.calls.push(`map_pages ${hex(iova)} ${hex(paddr)} ${hex(pgsize)} x${pgcount} prot=${prot}`);
    if (++this.mapCalls === this.failAt) return { ret: this.failWith, mapped: 0 };
    return { ret: 0, mapped: pgsize * pgcount };
  }

  unmapPages(d: IommuDomain, iova: bigint, pgsize: number, pgcount: number, gather: IotlbGather): number {
    this.calls.push(`unmap_pages ${hex(iova)} ${hex(pgsize)} x${pgcount}`);
    const size = Math.max(pgsize * pgcount, this.leafSize);
    iommuIotlbGatherAddPage(this, d, gather, iova, size);
    return size;
  }

  iotlbSync(_d: IommuDomain, g: IotlbGather): void {
    this.calls.push(`iotlb_sync ${hex(g.start)}-${hex(g.end)}`);
  }

  iotlbSyncMap(_d: IommuDomain, iova: bigint, size: number): void {
    this.calls.push(`iotlb_sync_map ${hex(iova)} ${hex(size)}`);
  }

  flushIotlbAll(d: IommuDomain): void {
    this.calls.push(`flush_iotlb_all ${(d as FakeDomain).id}`);
  }

  iovaToPhys(_d: IommuDomain, iova: bigint): bigint {
    this.calls.push(`iova_to_phys ${hex(iova)}`);
    return 0x7000n;
  }
}

const SZ_4K = 0x1000;
const SZ_8K = 0x2000;
const SZ_64K = 0x10000;
const SZ_2M = 0x200000;

function setup(bitmap: number, attachAdds = 0, leafSize = 0): { ops: RecordingOps; core: IommuCore; trace: TraceRing; d: IommuDomain } {
  const ops = new RecordingOps(bitmap, attachAdds, leafSize);
  const trace = new TraceRing('6.1', new SimClock());
  const core = new IommuCore(ops, trace);
  const d = core.attachDevice(0x10, 5);
  ops.calls.length = 0;
  return { ops, core, trace, d };
}

const texts = (t: TraceRing): string[] => t.events.map((e) => `${e.event}: ${e.text}`);

describe('IommuCore over a second driver', () => {
  it('attach: domain_alloc, the ops bitmap copied in, then attach_dev (which may add sizes)', () => {
    const ops = new RecordingOps(SZ_4K, SZ_2M);
    const core = new IommuCore(ops, new TraceRing('6.1', new SimClock()));
    const d = core.attachDevice(0x18, 7);
    expect(ops.calls).toEqual(['domain_alloc 7', 'attach_dev 7 0x18']);
    expect(d.pgsizeBitmap).toBe(0x201000);
    core.flushIotlbAll(d);
    expect(core.iovaToPhys(d, 0x5000n)).toBe(0x7000n);
    expect(ops.calls.slice(2)).toEqual(['flush_iotlb_all 7', 'iova_to_phys 0x5000']);
  });

  it('4K|2M, iova and paddr sharing their 2M offset: a 4K page up to the boundary, two 2M pages, a 4K tail, one sync_map, one map event', () => {
    const { ops, core, trace, d } = setup(SZ_4K | SZ_2M);
    expect(core.mapAtomic(d, 0x1ff000n, 0x3ff000n, 0x402000, 3)).toBe(0);
    expect(ops.calls).toEqual([
      'map_pages 0x1ff000 0x3ff000 0x1000 x1 prot=3',
      'map_pages 0x200000 0x400000 0x200000 x2 prot=3',
      'map_pages 0x600000 0x800000 0x1000 x1 prot=3',
      'iotlb_sync_map 0x1ff000 0x402000',
    ]);
    expect(texts(trace)).toEqual(['map: IOMMU: iova=0x00000000001ff000 - 0x0000000000601000 paddr=0x00000000003ff000 size=4202496']);
  });

  it('4K|2M, offsets in 2M differing: no 2M page can ever fit, so all 4K pages in one call', () => {
    const { ops, core, d } = setup(SZ_4K | SZ_2M);
    expect(core.mapAtomic(d, 0x1ff000n, 0x400000n, 0x400000, 1)).toBe(0);
    expect(ops.calls).toEqual(['map_pages 0x1ff000 0x400000 0x1000 x1024 prot=1', 'iotlb_sync_map 0x1ff000 0x400000']);
  });

  it('8K|64K (no 4K page): a 4K-aligned request is refused before any call; an 8K-aligned one goes 8K, 64K, 8K', () => {
    const { ops, core, trace, d } = setup(SZ_8K | SZ_64K);
    expect(core.mapAtomic(d, 0x1000n, 0x1000n, 0x1000, 3)).toBe(-22);
    expect(ops.calls).toEqual([]);
    expect(core.mapAtomic(d, 0xe000n, 0x1e000n, 0x14000, 3)).toBe(0);
    expect(ops.calls).toEqual([
      'map_pages 0xe000 0x1e000 0x2000 x1 prot=3',
      'map_pages 0x10000 0x20000 0x10000 x1 prot=3',
      'map_pages 0x20000 0x30000 0x2000 x1 prot=3',
      'iotlb_sync_map 0xe000 0x14000',
    ]);
    expect(core.unmap(d, 0x1000n, 0x1000)).toBe(0);
    expect(texts(trace)).toEqual(['map: IOMMU: iova=0x000000000000e000 - 0x0000000000022000 paddr=0x000000000001e000 size=81920']);
  });

  it('a failing map_pages: what was mapped is unmapped and synced, no map event, no sync_map, the errno returned', () => {
    const { ops, core, trace, d } = setup(SZ_4K | SZ_2M);
    ops.failAt = 2;
    ops.failWith = -12;
    expect(core.mapAtomic(d, 0x1ff000n, 0x3ff000n, 0x402000, 3)).toBe(-12);
    expect(ops.calls).toEqual([
      'map_pages 0x1ff000 0x3ff000 0x1000 x1 prot=3',
      'map_pages 0x200000 0x400000 0x200000 x2 prot=3',
      'unmap_pages 0x1ff000 0x1000 x1',
      'iotlb_sync 0x1ff000-0x1fffff',
    ]);
    expect(texts(trace)).toEqual(['unmap: IOMMU: iova=0x00000000001ff000 - 0x0000000000200000 size=4096 unmapped_size=4096']);
  });

  it('unmap across a page-size change: the gather syncs the 4K range before taking the 2M one; the caller syncs the rest', () => {
    const { ops, core, trace, d } = setup(SZ_4K | SZ_2M);
    const g = gatherInit();
    expect(core.unmapFast(d, 0x1ff000n, 0x201000, g)).toBe(0x201000);
    expect([g.start, g.end, g.pgsize]).toEqual([0x200000n, 0x3fffffn, 0x200000]);
    core.iotlbSync(d, g);
    expect(g).toEqual(gatherInit());
    expect(ops.calls).toEqual([
      'unmap_pages 0x1ff000 0x1000 x1',
      // the second unmap_pages adds a 2M page to a 4K gather: it syncs that first
      'unmap_pages 0x200000 0x200000 x1',
      'iotlb_sync 0x1ff000-0x1fffff',
      'iotlb_sync 0x200000-0x3fffff',
    ]);
    expect(texts(trace)).toEqual(['unmap: IOMMU: iova=0x00000000001ff000 - 0x0000000000400000 size=2101248 unmapped_size=2101248']);
  });

  it('a driver that clears a larger page than asked: one unmap_pages covers the request', () => {
    const { ops, core, d } = setup(SZ_4K | SZ_2M, 0, SZ_2M);
    expect(core.unmap(d, 0x200000n, 0x3000)).toBe(0x200000);
    expect(ops.calls).toEqual(['unmap_pages 0x200000 0x1000 x3', 'iotlb_sync 0x200000-0x3fffff']);
  });

  it('an unaligned unmap: no unmap_pages and no event, but iommu_unmap still syncs its empty gather', () => {
    const { ops, core, trace, d } = setup(SZ_4K);
    expect(core.unmap(d, 0x1800n, 0x1000)).toBe(0);
    expect(ops.calls).toEqual(['iotlb_sync 0xffffffffffffffff-0x0']);
    expect(texts(trace)).toEqual([]);
  });

  it('map_sg: physically contiguous entries join one __iommu_map, one sync_map for the total', () => {
    const { ops, core, trace, d } = setup(SZ_4K);
    const sgt = sgFromBuffers([
      { phys: 0x10000, length: 0x1000 },
      { phys: 0x11000, length: 0x1000 },
      { phys: 0x30000, length: 0x2000 },
    ]);
    expect(core.mapSg(d, 0x100000n, sgt.sgl, sgt.origNents, 2)).toBe(0x4000);
    expect(ops.calls).toEqual([
      'map_pages 0x100000 0x10000 0x1000 x2 prot=2',
      'map_pages 0x102000 0x30000 0x1000 x2 prot=2',
      'iotlb_sync_map 0x100000 0x4000',
    ]);
    expect(texts(trace)).toEqual([
      'map: IOMMU: iova=0x0000000000100000 - 0x0000000000102000 paddr=0x0000000000010000 size=8192',
      'map: IOMMU: iova=0x0000000000102000 - 0x0000000000104000 paddr=0x0000000000030000 size=8192',
    ]);
  });
});
