/**
 * The IOMMU core's mapping machinery as Linux 6.1 has it (drivers/iommu/iommu.c), over any
 * driver's IommuOps: iommu_pgsize chooses each chunk's page size, __iommu_map calls map_pages
 * per chunk and emits one iommu:map event on success (unrolling with iommu_unmap on failure),
 * _iommu_map ends with iotlb_sync_map, __iommu_unmap loops unmap_pages and emits one iommu:unmap
 * event, and __iommu_map_sg maps physically contiguous runs of a list with one iotlb_sync_map
 * for the total.
 *
 * At the edge, IOVAs and physical addresses are BigInt and sizes plain numbers (below 2^53).
 */
import type { TraceRing } from '../kernel/trace.js';
import { iommuMapEvent, printIommuUnmap } from '../kernel/trace.js';
import type { Scatterlist } from '../kernel/scatterlist.js';
import { sgPhys } from '../kernel/scatterlist.js';
import { BUG } from '../kernel/assert.js';
import { EINVAL, __ffs, __fls } from '../kernel/bits.js';
import { gatherInit, iommuIotlbSync, type IommuDomain, type IommuOps, type IotlbGather } from './iommu-ops.js';

/** iommu_pgsize: the largest supported size that fits and is aligned, and how many of them. */
export function iommuPgsize(bitmap: number, iova: bigint, paddr: bigint, size: number): { pgsize: number; count: number } {
  let left = BigInt(size);
  const addrMerge = paddr | iova;
  let pgsizes = BigInt(bitmap) & ((1n << BigInt(__fls(left) + 1)) - 1n);
  if (addrMerge !== 0n) pgsizes &= (1n << BigInt(__ffs(addrMerge) + 1)) - 1n;
  if (pgsizes === 0n) BUG('iommu_pgsize found no page size');
  const idx = __fls(pgsizes);
  const pgsize = 1n << BigInt(idx);
  const bigger = BigInt(bitmap) & ~((1n << BigInt(idx + 1)) - 1n);
  if (bigger !== 0n) {
    const next = 1n << BigInt(__ffs(bigger));
    // only worth stopping at the next boundary when iova and paddr share the offset in it
    if (((iova ^ paddr) & (next - 1n)) === 0n) {
      const offset = next - (addrMerge & (next - 1n));
      if (offset + next <= left) left = offset;
    }
  }
  return { pgsize: Number(pgsize), count: Number(left >> BigInt(idx)) };
}

/** 1 << __ffs(pgsize_bitmap), on numbers (a bitmap holds sizes below 2^53) */
function minPagesz(bitmap: number): number {
  let min = 1;
  while (min < bitmap && bitmap % (min * 2) === 0) min *= 2;
  return min;
}

/** Seeded bugs for proving the harness can fail; all off by default. */
export interface IommuCoreFaults {
  /** iommu_map_atomic maps the pages but records no iommu:map event (iommu_map_sg still does) */
  noMapTraceAtomic?: boolean;
}

export class IommuCore {
  /** min_pagesz - 1 as a mask, for the last pgsize_bitmap seen (every domain of a driver shares it) */
  private maskBitmap = -1;
  private minPageMask = 0n;

  constructor(
    private readonly ops: IommuOps,
    private readonly trace: TraceRing,
    readonly faults: IommuCoreFaults = {},
  ) {}

  /** IS_ALIGNED(x, min_pagesz): aligned to the domain's smallest page */
  private minPageAligned(bitmap: number, x: bigint): boolean {
    if (bitmap !== this.maskBitmap) {
      this.maskBitmap = bitmap;
      this.minPageMask = BigInt(minPagesz(bitmap) - 1);
    }
    return (x & this.minPageMask) === 0n;
  }

  /**
   * The group's default domain: __iommu_domain_alloc (ops->domain_alloc, then the domain gets
   * ops->pgsize_bitmap) and __iommu_attach_device (attach_dev, which may widen the bitmap).
   */
  attachDevice(sid: number, did: number): IommuDomain {
    const d = this.ops.domainAlloc(did);
    d.pgsizeBitmap = this.ops.pgsizeBitmap;
    const ret = this.ops.attachDev(d, sid);
    if (ret !== 0) BUG(`attach_dev of requester ${sid} failed (${ret})`);
    return d;
  }

  /**
   * __iommu_map: chunks through map_pages; one map event on success, unroll on failure.
   * `traced` false is the seeded noMapTraceAtomic bug (the event is left out).
   */
  private map(d: IommuDomain, iova: bigint, paddr: bigint, size: number, prot: number, traced = true): number {
    if (!this.minPageAligned(d.pgsizeBitmap, iova | paddr | BigInt(size))) return -EINVAL;
    const origIova = iova;
    const origPaddr = paddr;
    const origSize = size;
    let ret = 0;
    while (size > 0) {
      const { pgsize, count } = iommuPgsize(d.pgsizeBitmap, iova, paddr, size);
      const r = this.ops.mapPages(d, iova, paddr, pgsize, count, prot);
      size -= r.mapped;
      ret = r.ret;
      if (ret !== 0) break;
      iova += BigInt(r.mapped);
      paddr += BigInt(r.mapped);
    }
    if (ret !== 0) this.unmap(d, origIova, origSize - size);
    else if (traced) this.trace.emit('iommu', 'map', ...iommuMapEvent(origIova, origPaddr, origSize));
    return ret;
  }

  /**
   * iommu_map / iommu_map_atomic: __iommu_map, then iotlb_sync_map on success. Seeded bug
   * noMapTraceAtomic: the kernel traces every successful __iommu_map; here this caller does not.
   */
  mapAtomic(d: IommuDomain, iova: bigint, paddr: bigint, size: number, prot: number): number {
    const ret = this.map(d, iova, paddr, size, prot, this.faults.noMapTraceAtomic !== true);
    if (ret === 0) this.ops.iotlbSyncMap(d, iova, size);
    return ret;
  }

  /** iommu_iotlb_sync: the driver's iotlb_sync, then a fresh gather */
  iotlbSync(d: IommuDomain, g: IotlbGather): void {
    iommuIotlbSync(this.ops, d, g);
  }

  /** iommu_flush_iotlb_all */
  flushIotlbAll(d: IommuDomain): void {
    this.ops.flushIotlbAll(d);
  }

  /** iommu_iova_to_phys (a paging domain: the driver's iova_to_phys) */
  iovaToPhys(d: IommuDomain, iova: bigint): bigint {
    return this.ops.iovaToPhys(d, iova);
  }

  /** __iommu_unmap: unmap_pages until size is covered (or nothing more); one unmap event. */
  unmapFast(d: IommuDomain, iova: bigint, size: number, g: IotlbGather): number {
    if (!this.minPageAligned(d.pgsizeBitmap, iova | BigInt(size))) return 0;
    const orig = iova;
    let unmapped = 0;
    while (unmapped < size) {
      const { pgsize, count } = iommuPgsize(d.pgsizeBitmap, iova, iova, size - unmapped);
      const page = this.ops.unmapPages(d, iova, pgsize, count, g);
      if (page === 0) break;
      iova += BigInt(page);
      unmapped += page;
    }
    this.trace.emit('iommu', 'unmap', printIommuUnmap, { num: { iova: orig, size: BigInt(size), unmapped_size: BigInt(unmapped) } });
    return unmapped;
  }

  /** iommu_unmap: with its own gather, synced */
  unmap(d: IommuDomain, iova: bigint, size: number): number {
    const g = gatherInit();
    const r = this.unmapFast(d, iova, size, g);
    this.iotlbSync(d, g);
    return r;
  }

  /**
   * __iommu_map_sg: physically contiguous entries (as the layout pass left them) join one
   * __iommu_map; one iotlb_sync_map for the total. Returns bytes mapped or a negative errno.
   */
  mapSg(d: IommuDomain, iova: bigint, sgl: readonly Scatterlist[], nents: number, prot: number): number {
    let len = 0;
    let mapped = 0;
    let start = 0;
    let i = 0;
    let s = 0;
    while (i <= nents) {
      const sPhys = sgPhys(sgl[s]!);
      if (len !== 0 && sPhys !== start + len) {
        const ret = this.map(d, iova + BigInt(mapped), BigInt(start), len, prot);
        if (ret !== 0) {
          this.unmap(d, iova, mapped);
          return ret;
        }
        mapped += len;
        len = 0;
      }
      if (len !== 0) {
        len += sgl[s]!.length;
      } else {
        len = sgl[s]!.length;
        start = sPhys;
      }
      if (++i < nents) s++;
    }
    this.ops.iotlbSyncMap(d, iova, mapped);
    return mapped;
  }
}
