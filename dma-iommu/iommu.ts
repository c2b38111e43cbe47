/**
 * The IOMMU core's mapping machinery as Linux 6.1 has it (drivers/iommu/iommu.c): iommu_pgsize
 * chooses each chunk's page size, __iommu_map calls map_pages per chunk and emits one iommu:map
 * event on success (unrolling with iommu_unmap on failure), _iommu_map ends with iotlb_sync_map,
 * __iommu_unmap loops unmap_pages and emits one iommu:unmap event, and __iommu_map_sg maps
 * physically contiguous runs of a list with one iotlb_sync_map for the total.
 */
import type { TraceRing } from '../kernel/trace.js';
import { iommuMapEvent, printIommuUnmap } from '../kernel/trace.js';
import type { Scatterlist } from '../kernel/scatterlist.js';
import { sgPhys } from '../kernel/scatterlist.js';
import { gatherInit, type DmarDomain, type IntelIommuOps, type IotlbGather } from './intel-iommu.js';
import { EINVAL, __ffs, __fls, pageAligned } from '../kernel/bits.js';

/** iommu_pgsize: the largest supported size that fits and is aligned, and how many of them. */
export function iommuPgsize(bitmap: number, iova: bigint, paddr: bigint, size: bigint): { pgsize: bigint; count: bigint } {
  const addrMerge = paddr | iova;
  let pgsizes = BigInt(bitmap) & ((1n << BigInt(__fls(size) + 1)) - 1n);
  if (addrMerge !== 0n) pgsizes &= (1n << BigInt(__ffs(addrMerge) + 1)) - 1n;
  if (pgsizes === 0n) throw new Error('BUG: iommu_pgsize found no page size');
  const idx = __fls(pgsizes);
  const pgsize = 1n << BigInt(idx);
  const bigger = BigInt(bitmap) & ~((1n << BigInt(idx + 1)) - 1n);
  if (bigger !== 0n) {
    const next = 1n << BigInt(__ffs(bigger));
    // only worth stopping at the next boundary when iova and paddr share the offset in it
    if (((iova ^ paddr) & (next - 1n)) === 0n) {
      const offset = next - (addrMerge & (next - 1n));
      if (offset + next <= size) size = offset;
    }
  }
  return { pgsize, count: size >> BigInt(idx) };
}

/** Seeded bugs for proving the harness can fail; all off by default. */
export interface IommuCoreFaults {
  /** iommu_map_atomic maps the pages but records no iommu:map event (iommu_map_sg still does) */
  noMapTraceAtomic?: boolean;
}

export class IommuCore {
  constructor(
    private readonly ops: IntelIommuOps,
    private readonly trace: TraceRing,
    readonly faults: IommuCoreFaults = {},
  ) {}

  /**
   * __iommu_map: chunks through map_pages; one map event on success, unroll on failure.
   * `traced` false is the seeded noMapTraceAtomic bug (the event is left out).
   */
  private map(d: DmarDomain, iova: bigint, paddr: bigint, size: bigint, prot: number, traced = true): number {
    if (!pageAligned(iova | paddr | size)) return -EINVAL;
    const origIova = iova;
    const origPaddr = paddr;
    const origSize = size;
    let ret = 0;
    while (size > 0n) {
      const { pgsize, count } = iommuPgsize(d.pgsizeBitmap, iova, paddr, size);
      const r = this.ops.mapPages(d, iova, paddr, Number(pgsize), Number(count), prot);
      size -= BigInt(r.mapped);
      ret = r.ret;
      if (ret !== 0) break;
      iova += BigInt(r.mapped);
      paddr += BigInt(r.mapped);
    }
    if (ret !== 0) this.unmap(d, origIova, origSize - size);
    else if (traced) this.trace.emit('iommu', 'map', ...iommuMapEvent(origIova, origPaddr, Number(origSize)));
    return ret;
  }

  /**
   * iommu_map / iommu_map_atomic: __iommu_map, then iotlb_sync_map on success. Seeded bug
   * noMapTraceAtomic: the kernel traces every successful __iommu_map; here this caller does not.
   */
  mapAtomic(d: DmarDomain, iova: bigint, paddr: bigint, size: number, prot: number): number {
    const ret = this.map(d, iova, paddr, BigInt(size), prot, this.faults.noMapTraceAtomic !== true);
    if (ret === 0) this.ops.iotlbSyncMap(d, iova, size);
    return ret;
  }

  /** iommu_iotlb_sync: the driver's iotlb_sync, then a fresh gather */
  iotlbSync(d: DmarDomain, g: IotlbGather): void {
    this.ops.iotlbSync(d, g);
    Object.assign(g, gatherInit());
  }

  /** __iommu_unmap: unmap_pages until size is covered (or nothing more); one unmap event. */
  unmapFast(d: DmarDomain, iova: bigint, size: number, g: IotlbGather): number {
    if (!pageAligned(iova | BigInt(size))) return 0;
    const orig = iova;
    let unmapped = 0;
    while (unmapped < size) {
      const { pgsize, count } = iommuPgsize(d.pgsizeBitmap, iova, iova, BigInt(size - unmapped));
      const page = this.ops.unmapPages(d, iova, Number(pgsize), Number(count), g, (gg) => this.iotlbSync(d, gg));
      if (page === 0) break;
      iova += BigInt(page);
      unmapped += page;
    }
    this.trace.emit('iommu', 'unmap', printIommuUnmap, { num: { iova: orig, size: BigInt(size), unmapped_size: BigInt(unmapped) } });
    return unmapped;
  }

  /** iommu_unmap: with its own gather, synced */
  unmap(d: DmarDomain, iova: bigint, size: bigint): number {
    const g = gatherInit();
    const r = this.unmapFast(d, iova, Number(size), g);
    this.iotlbSync(d, g);
    return r;
  }

  /**
   * __iommu_map_sg: physically contiguous entries (as the layout pass left them) join one
   * __iommu_map; one iotlb_sync_map for the total. Returns bytes mapped or a negative errno.
   */
  mapSg(d: DmarDomain, iova: bigint, sgl: readonly Scatterlist[], nents: number, prot: number): number {
    let len = 0n;
    let mapped = 0n;
    let start = 0n;
    let i = 0;
    let s = 0;
    while (i <= nents) {
      const sPhys = BigInt(sgPhys(sgl[s]!));
      if (len !== 0n && sPhys !== start + len) {
        const ret = this.map(d, iova + mapped, start, len, prot);
        if (ret !== 0) {
          this.unmap(d, iova, mapped);
          return ret;
        }
        mapped += len;
        len = 0n;
      }
      if (len !== 0n) {
        len += BigInt(sgl[s]!.length);
      } else {
        len = BigInt(sgl[s]!.length);
        start = sPhys;
      }
      if (++i < nents) s++;
    }
    this.ops.iotlbSyncMap(d, iova, Number(mapped));
    return Number(mapped);
  }
}
