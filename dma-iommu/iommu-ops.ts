/**
 * What the IOMMU core and dma-iommu know of an IOMMU driver, as Linux 6.1's include/linux/iommu.h
 * states it: the IOMMU_* protection flags, struct iommu_iotlb_gather with its inline helpers,
 * struct iommu_domain as the core sees it, and the driver's callbacks (struct iommu_ops and
 * struct iommu_domain_ops folded into one interface: here one core has one driver).
 *
 * The generic layer depends only on this file; dma-iommu-path.ts chooses the driver (the
 * converted VT-d driver, intel-iommu.ts), so a second driver could stand beside it.
 */
import { ULONG_MAX } from '../kernel/device.js';

/** IOMMU_* protection flags of the core API */
export const IOMMU_READ = 1 << 0;
export const IOMMU_WRITE = 1 << 1;
export const IOMMU_CACHE = 1 << 2;

/** struct iommu_iotlb_gather */
export interface IotlbGather {
  start: bigint;
  /** inclusive */
  end: bigint;
  pgsize: number;
  /** table pages to free once the IOTLB no longer caches them */
  freelist: number[];
  queued: boolean;
}

/** iommu_iotlb_gather_init */
export function gatherInit(queued = false): IotlbGather {
  return { start: ULONG_MAX, end: 0n, pgsize: 0, freelist: [], queued };
}

/**
 * struct iommu_domain, the parts the core and dma-iommu read. A driver's own domain (the VT-d
 * driver's struct dmar_domain) extends it, and the driver downcasts what the core hands back
 * (to_dmar_domain); the core never looks further.
 */
export interface IommuDomain {
  /** domain->pgsize_bitmap: the page sizes map_pages and unmap_pages take */
  pgsizeBitmap: number;
  /** domain->geometry.aperture_end: the last IOVA the domain can map */
  apertureEnd: bigint;
}

/** map_pages' two results: 0 or a negative errno, and the bytes mapped (*mapped) */
export interface MapPagesResult {
  ret: number;
  mapped: number;
}

/**
 * struct iommu_ops + struct iommu_domain_ops: the callbacks the core makes. Sizes are plain
 * numbers (below 2^53), IOVAs and physical addresses BigInt.
 */
export interface IommuOps {
  /** ops->pgsize_bitmap: what __iommu_domain_alloc gives a new domain before attach */
  readonly pgsizeBitmap: number;
  /**
   * ops->domain_alloc(IOMMU_DOMAIN_DMA). `did` is the domain id the group's probe position gives
   * (the VT-d driver takes it in domain_attach_iommu; here ids follow the probe order).
   */
  domainAlloc(did: number): IommuDomain;
  /** attach_dev: the device (by requester id) now translates through the domain; 0 or -errno */
  attachDev(d: IommuDomain, sid: number): number;
  /** map_pages: pgcount pages of pgsize at iova to paddr */
  mapPages(d: IommuDomain, iova: bigint, paddr: bigint, pgsize: number, pgcount: number, prot: number): MapPagesResult;
  /**
   * unmap_pages: returns the bytes unmapped (may exceed pgsize * pgcount where a larger page
   * sits); the driver adds what the IOTLB must forget to the gather (iommuIotlbGatherAddPage)
   */
  unmapPages(d: IommuDomain, iova: bigint, pgsize: number, pgcount: number, gather: IotlbGather): number;
  /** iotlb_sync: flush what the gather collected */
  iotlbSync(d: IommuDomain, gather: IotlbGather): void;
  /** iotlb_sync_map: after new mappings (caching mode needs a flush for them) */
  iotlbSyncMap(d: IommuDomain, iova: bigint, size: number): void;
  /** flush_iotlb_all: the whole domain (the flush queue's flush) */
  flushIotlbAll(d: IommuDomain): void;
  /** iova_to_phys: 0 if nothing is mapped at iova */
  iovaToPhys(d: IommuDomain, iova: bigint): bigint;
}

/** iommu_iotlb_sync: the driver's iotlb_sync, then a fresh gather */
export function iommuIotlbSync(ops: IommuOps, d: IommuDomain, g: IotlbGather): void {
  ops.iotlbSync(d, g);
  Object.assign(g, gatherInit());
}

/**
 * iommu_iotlb_gather_add_page: a range of another page size, or one disjoint from the gathered
 * range, syncs first; then [start, end] widens (end inclusive).
 */
export function iommuIotlbGatherAddPage(ops: IommuOps, d: IommuDomain, g: IotlbGather, iova: bigint, size: number): void {
  const end = iova + BigInt(size) - 1n;
  const disjoint = g.end !== 0n && (end + 1n < g.start || iova > g.end + 1n);
  if ((g.pgsize !== 0 && g.pgsize !== size) || disjoint) iommuIotlbSync(ops, d, g);
  g.pgsize = size;
  if (g.start > iova) g.start = iova;
  if (g.end < end) g.end = end;
}
