/**
 * The generic DMA-IOMMU layer as Linux 6.1.192 has it (drivers/iommu/dma-iommu.c): IOVA
 * allocation per DMA cookie, map/unmap through the IOMMU core, the flush queue (which lives here
 * since v5.17), scatterlists laid out, mapped and merged by __finalise_sg, swiotlb bouncing for
 * untrusted devices, syncs, and coherent allocations. Kernel-semantics 9.3 and 9.4.
 */
import { DMA_ATTR_SKIP_CPU_SYNC, DMA_MAPPING_ERROR, DmaDirection, dmaBitMask, type Device } from '../kernel/device.js';
import type { FlushQueue } from '../kernel/flush-queue.js';
import type { IovaDomain } from '../kernel/iova.js';
import type { Machine } from '../platform/machine.js';
import { MAX_ORDER } from '../kernel/page-alloc.js';
import { alignUp } from '../kernel/release.js';
import { sgFromPages, sgPhys, type Scatterlist } from '../kernel/scatterlist.js';
import { SWIOTLB_MAP_ERROR, zeroBouncePadding } from '../kernel/swiotlb.js';
import { iommuMapEvent } from '../kernel/trace.js';
import type { IommuCore } from './iommu.js';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE, gatherInit, type IommuDomain, type IotlbGather } from './iommu-ops.js';
import { EINVAL, EIO, ENOMEM, iovaOffset, iovaPfn, pfnAddr } from '../kernel/bits.js';
import { must } from '../kernel/assert.js';

const GRANULE = 4096;

/**
 * A DMA domain with its cookie: the driver's domain (a struct iommu_domain to this layer; the
 * path that chose the driver keeps its own type in D), the IOVA domain and (DMA_FQ only) the queue.
 */
export interface DmaDomain<D extends IommuDomain = IommuDomain> {
  domain: D;
  iovad: IovaDomain;
  /** cookie->fq_domain: present only for IOMMU_DOMAIN_DMA_FQ */
  fq: FlushQueue | null;
}

/** Seeded bugs for proving the harness can fail; all off by default. */
export interface DmaIommuFaults {
  /** the bounce padding is left as the slot had it */
  noBouncePaddingZero?: boolean;
  /** __finalise_sg merges without looking at max_seg_size */
  mergeIgnoresMaxSeg?: boolean;
  /** untrusted devices get a flush-queue domain, as in v5.11-v5.14 (kernel-semantics 7.3) */
  lazyUntrusted?: boolean;
  /** sync_sg of a bounced list: one single sync from sgl[0] for the summed length, as if merged */
  syncSgWholeList?: boolean;
  /** unmap_page copies a bounce back only for FROM_DEVICE (SKIP_CPU_SYNC for every other direction) */
  unmapCopyBackFromDeviceOnly?: boolean;
  /** unmap_page hands swiotlb the slot's aligned size as the mapping size: the padding is copied back */
  unmapCopyBackAligned?: boolean;
  /** a bounced map_page also traces an iommu:map of the caller's buffer, as 5.10's bounce_map_single traced it */
  bounceTracesOriginal?: boolean;
  /** sync_single_for_device refills the whole aligned slot from the original buffer */
  syncForDeviceWholeSlot?: boolean;
}

export interface DmaIommuContext {
  m: Machine;
  core: IommuCore;
  domainOf(dev: Device): DmaDomain;
  /** iommu_dma_forcedac */
  forcedac: boolean;
  faults: DmaIommuFaults;
}

/** iova_align: round up to the domain's granule */
function iovaAlign(n: number): number {
  return alignUp(n, GRANULE);
}

/** dev_is_untrusted / dev_use_swiotlb (CONFIG_SWIOTLB is always set on x86), read on every call */
export function devUseSwiotlb(dev: Device): boolean {
  return dev.pci && dev.untrusted;
}

/** dma_info_to_prot: x86 devices are coherent, so IOMMU_CACHE always; FROM_DEVICE is WRITE */
export function dmaInfoToProt(dir: DmaDirection): number {
  switch (dir) {
    case DmaDirection.Bidirectional:
      return IOMMU_CACHE | IOMMU_READ | IOMMU_WRITE;
    case DmaDirection.ToDevice:
      return IOMMU_CACHE | IOMMU_READ;
    case DmaDirection.FromDevice:
      return IOMMU_CACHE | IOMMU_WRITE;
    default:
      return 0;
  }
}

/**
 * iommu_dma_alloc_iova: the limit clamped by the bus limit and the forced aperture; PCI devices
 * try below 4 GiB first unless forcedac; rounding below 32 pages happens in alloc_iova_fast.
 */
export function iommuDmaAllocIova(c: DmaIommuContext, dev: Device, dd: DmaDomain, size: number, dmaLimit: bigint, cpu: number): bigint {
  const iovaLen = size / GRANULE;
  let limit = dmaLimit;
  if (dev.busDmaLimit !== 0n && (limit === 0n || dev.busDmaLimit < limit)) limit = dev.busDmaLimit;
  if (dd.domain.apertureEnd < limit) limit = dd.domain.apertureEnd;
  let pfn = 0;
  if (limit > dmaBitMask(32) && !c.forcedac && dev.pci) pfn = dd.iovad.allocIovaFast(cpu, iovaLen, iovaPfn(dmaBitMask(32)), false);
  if (pfn === 0) pfn = dd.iovad.allocIovaFast(cpu, iovaLen, iovaPfn(limit), true);
  if (pfn === 0) c.m.stats.iovaAllocFailures++;
  return pfnAddr(pfn);
}

/** iommu_dma_free_iova: queued with the gather's table pages, or straight back to the caches */
export function iommuDmaFreeIova(dd: DmaDomain, iova: bigint, size: number, gather: IotlbGather | null, cpu: number): void {
  const pfn = iovaPfn(iova);
  if (gather !== null && gather.queued) must(dd.fq, 'the flush queue of the DMA_FQ domain a queued gather came from').queueIova(cpu, pfn, size / GRANULE, gather.freelist);
  else dd.iovad.freeIovaFast(cpu, pfn, size / GRANULE);
}

/** __iommu_dma_unmap: one unmap of the granule-aligned range, a sync unless queued, the IOVA freed. */
export function iommuDmaUnmap(c: DmaIommuContext, dev: Device, addr: bigint, size: number, cpu: number): void {
  const dd = c.domainOf(dev);
  const off = iovaOffset(addr);
  addr -= BigInt(off);
  size = iovaAlign(size + off);
  const gather = gatherInit(dd.fq !== null);
  const unmapped = c.core.unmapFast(dd.domain, addr, size, gather);
  if (unmapped !== size) c.m.log.print(`WARNING: CPU: ${c.m.trace.cpu} PID: 1 at drivers/iommu/dma-iommu.c: __iommu_dma_unmap`);
  if (!gather.queued) c.core.iotlbSync(dd.domain, gather);
  iommuDmaFreeIova(dd, addr, size, gather, cpu);
}

/** __iommu_dma_map: allocate, map the aligned range, keep the sub-granule offset in the handle */
export function iommuDmaMap(c: DmaIommuContext, dev: Device, phys: number, size: number, prot: number, dmaMask: bigint, cpu: number): bigint {
  const dd = c.domainOf(dev);
  const off = phys % GRANULE;
  size = iovaAlign(size + off);
  const iova = iommuDmaAllocIova(c, dev, dd, size, dmaMask, cpu);
  if (iova === 0n) return DMA_MAPPING_ERROR;
  if (c.core.mapAtomic(dd.domain, iova, BigInt(phys - off), size, prot) !== 0) {
    iommuDmaFreeIova(dd, iova, size, null, cpu);
    return DMA_MAPPING_ERROR;
  }
  return iova + BigInt(off);
}

/**
 * iommu_dma_map_page: an untrusted device's unaligned buffer goes through a 4 KiB-aligned
 * swiotlb slot (alloc_align_mask = iova_mask), the padding zeroed with the pre-v6.10 rule, and
 * the slot is mapped with the unaligned size.
 */
export function iommuDmaMapPage(c: DmaIommuContext, dev: Device, phys: number, size: number, dir: DmaDirection, attrs: number, cpu: number): bigint {
  const prot = dmaInfoToProt(dir);
  const sw = c.m.swiotlb;
  const orig = phys;
  const bounced = devUseSwiotlb(dev) && (phys % GRANULE !== 0 || size % GRANULE !== 0);
  const aligned = iovaAlign(size);
  if (bounced) {
    const tlb = sw.mapSingle(dev, cpu, phys, size, aligned, GRANULE - 1, attrs);
    if (tlb === SWIOTLB_MAP_ERROR) return DMA_MAPPING_ERROR;
    if (!c.faults.noBouncePaddingZero) zeroBouncePadding(c.m.memory, tlb, size, aligned, dir, attrs);
    phys = tlb;
  }
  const iova = iommuDmaMap(c, dev, phys, size, prot, dev.dmaMask, cpu);
  if (iova === DMA_MAPPING_ERROR && sw.isSwiotlbBuffer(phys)) sw.unmapSingle(dev, phys, size, 0, dir, attrs);
  // seeded bug (bounceTracesOriginal): 6.1 traces only the slot's mapping, never the original buffer
  if (c.faults.bounceTracesOriginal === true && iova !== DMA_MAPPING_ERROR && bounced) {
    c.m.trace.emit('iommu', 'map', ...iommuMapEvent(iova & ~BigInt(GRANULE - 1), BigInt(orig - (orig % GRANULE)), aligned));
  }
  return iova;
}

/** iommu_dma_unmap_page: find the physical side first (a bounce slot is released after the flush) */
export function iommuDmaUnmapPage(c: DmaIommuContext, dev: Device, handle: bigint, size: number, dir: DmaDirection, attrs: number, cpu: number): void {
  const phys = c.core.iovaToPhys(c.domainOf(dev).domain, handle);
  if (phys === 0n) {
    c.m.log.print(`WARNING: CPU: ${c.m.trace.cpu} PID: 1 at drivers/iommu/dma-iommu.c: iommu_dma_unmap_page`);
    return;
  }
  iommuDmaUnmap(c, dev, handle, size, cpu);
  if (c.m.swiotlb.isSwiotlbBuffer(Number(phys))) {
    // seeded bugs: 6.1 hands swiotlb the caller's attrs and size, so FROM_DEVICE and BIDIRECTIONAL
    // both copy back, and exactly the caller's bytes
    let unmapAttrs = attrs;
    if (c.faults.unmapCopyBackFromDeviceOnly === true && dir !== DmaDirection.FromDevice) unmapAttrs |= DMA_ATTR_SKIP_CPU_SYNC;
    const mappingSize = c.faults.unmapCopyBackAligned === true ? iovaAlign(size) : size;
    c.m.swiotlb.unmapSingle(dev, Number(phys), mappingSize, 0, dir, unmapAttrs);
  }
}

/** iommu_dma_sync_single_for_cpu / _for_device: only swiotlb users have anything to do on x86 */
export function iommuDmaSyncSingle(c: DmaIommuContext, dev: Device, handle: bigint, size: number, dir: DmaDirection, forCpu: boolean): void {
  if (!devUseSwiotlb(dev)) return;
  const phys = Number(c.core.iovaToPhys(c.domainOf(dev).domain, handle));
  if (!c.m.swiotlb.isSwiotlbBuffer(phys)) return;
  if (forCpu) c.m.swiotlb.syncForCpu(dev, phys, size, dir);
  // seeded bug (syncForDeviceWholeSlot): 6.1 copies only the caller's size into the slot
  else c.m.swiotlb.syncForDevice(dev, phys, c.faults.syncForDeviceWholeSlot === true ? iovaAlign(size) : size, dir);
}

/** iommu_dma_sync_sg_*: per entry by DMA address and CPU length, for swiotlb users only */
export function iommuDmaSyncSg(c: DmaIommuContext, dev: Device, sgl: Scatterlist[], nelems: number, dir: DmaDirection, forCpu: boolean): void {
  if (!devUseSwiotlb(dev)) return;
  if (c.faults.syncSgWholeList === true) {
    // seeded bug: 6.1 syncs every entry of a bounced list on its own, never the list as one segment
    if (nelems === 0) return;
    let total = 0;
    for (let i = 0; i < nelems; i++) total += sgl[i]!.length;
    iommuDmaSyncSingle(c, dev, sgl[0]!.dmaAddress, total, dir, forCpu);
    return;
  }
  for (let i = 0; i < nelems; i++) iommuDmaSyncSingle(c, dev, sgl[i]!.dmaAddress, sgl[i]!.length, dir, forCpu);
}

/**
 * __finalise_sg: walk the laid-out list, restore each entry's CPU fields and build the output
 * segments from the front. A segment grows while an entry starts on a granule, its IOVA is not
 * on a segment boundary, and max_len - cur_len >= its length in unsigned 32-bit arithmetic (so
 * a first entry already longer than max_seg_size lets later ones keep merging).
 */
export function finaliseSg(c: DmaIommuContext, dev: Device, sgl: Scatterlist[], nents: number, dmaAddr: bigint): number {
  const segMask = dev.segBoundaryMask;
  const maxLen = dev.maxSegSize >>> 0;
  let cur = 0;
  let curLen = 0;
  let count = 0;
  for (let i = 0; i < nents; i++) {
    const s = sgl[i]!;
    const sIovaOff = Number(s.dmaAddress & 0xffffffffn);
    const sLength = s.dmaLength >>> 0;
    const sIovaLen = s.length >>> 0;
    s.dmaAddress = DMA_MAPPING_ERROR;
    s.dmaLength = 0;
    s.offset += sIovaOff;
    s.length = sLength;
    const fits = c.faults.mergeIgnoresMaxSeg === true || ((maxLen - curLen) >>> 0) >= sLength;
    if (curLen !== 0 && sIovaOff === 0 && (dmaAddr & segMask) !== 0n && fits) {
      curLen = (curLen + sLength) >>> 0;
    } else {
      if (i > 0) cur++;
      curLen = sLength;
      count++;
      sgl[cur]!.dmaAddress = dmaAddr + BigInt(sIovaOff);
    }
    sgl[cur]!.dmaLength = curLen;
    dmaAddr += BigInt(sIovaLen);
    if (sLength + sIovaOff < sIovaLen) curLen = 0;
  }
  return count;
}

/** __invalidate_sg: restore the CPU fields, mark every DMA field unused */
function invalidateSg(sgl: Scatterlist[], nents: number): void {
  for (let i = 0; i < nents; i++) {
    const s = sgl[i]!;
    if (s.dmaAddress !== DMA_MAPPING_ERROR) s.offset += Number(s.dmaAddress);
    if (s.dmaLength !== 0) s.length = s.dmaLength;
    s.dmaAddress = DMA_MAPPING_ERROR;
    s.dmaLength = 0;
  }
}

/** iommu_dma_map_sg_swiotlb: every entry through iommu_dma_map_page, no merging; -EIO on failure */
function mapSgSwiotlb(c: DmaIommuContext, dev: Device, sgl: Scatterlist[], nents: number, dir: DmaDirection, attrs: number, cpu: number): number {
  for (let i = 0; i < nents; i++) {
    const s = sgl[i]!;
    s.dmaAddress = iommuDmaMapPage(c, dev, sgPhys(s), s.length, dir, attrs, cpu);
    if (s.dmaAddress === DMA_MAPPING_ERROR) {
      unmapSgSwiotlb(c, dev, sgl, i, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC, cpu);
      return -EIO;
    }
    s.dmaLength = s.length;
  }
  return nents;
}

/** iommu_dma_unmap_sg_swiotlb: each entry was bounced and mapped on its own */
function unmapSgSwiotlb(c: DmaIommuContext, dev: Device, sgl: Scatterlist[], nents: number, dir: DmaDirection, attrs: number, cpu: number): void {
  for (let i = 0; i < nents; i++) iommuDmaUnmapPage(c, dev, sgl[i]!.dmaAddress, sgl[i]!.dmaLength, dir, attrs, cpu);
}

/**
 * iommu_dma_map_sg: align each entry to the granule (stashing the originals in the DMA fields),
 * pad the previous entry when the next would cross the segment boundary, allocate one IOVA
 * range, map it with iommu_map_sg and finalise. Returns the count or a negative errno.
 */
export function iommuDmaMapSg(c: DmaIommuContext, dev: Device, sgl: Scatterlist[], nents: number, dir: DmaDirection, attrs: number, cpu: number): number {
  if (devUseSwiotlb(dev)) return mapSgSwiotlb(c, dev, sgl, nents, dir, attrs, cpu);
  const dd = c.domainOf(dev);
  const mask = dev.segBoundaryMask;
  const prot = dmaInfoToProt(dir);
  let iovaLen = 0;
  let prev: Scatterlist | null = null;
  for (let i = 0; i < nents; i++) {
    const s = sgl[i]!;
    const sIovaOff = s.offset % GRANULE;
    const padLen = BigInt.asUintN(64, mask - BigInt(iovaLen) + 1n) & mask;
    s.dmaAddress = BigInt(sIovaOff);
    s.dmaLength = s.length;
    s.offset -= sIovaOff;
    const sLength = iovaAlign(s.length + sIovaOff);
    s.length = sLength;
    // size_t arithmetic: s_length - 1 wraps for a zero length
    if (padLen !== 0n && padLen < BigInt.asUintN(64, BigInt(sLength) - 1n)) {
      prev!.length = (prev!.length + Number(padLen)) >>> 0;
      iovaLen += Number(padLen);
    }
    iovaLen += sLength;
    prev = s;
  }
  if (iovaLen === 0) return finaliseSg(c, dev, sgl, nents, 0n);
  const iova = iommuDmaAllocIova(c, dev, dd, iovaLen, dev.dmaMask, cpu);
  if (iova === 0n) {
    invalidateSg(sgl, nents);
    return -ENOMEM;
  }
  const ret = c.core.mapSg(dd.domain, iova, sgl, nents, prot);
  if (ret < 0 || ret < iovaLen) {
    iommuDmaFreeIova(dd, iova, iovaLen, null, cpu);
    invalidateSg(sgl, nents);
    return ret === -ENOMEM ? -ENOMEM : -EINVAL;
  }
  return finaliseSg(c, dev, sgl, nents, iova);
}

/** iommu_dma_unmap_sg: one unmap from the first segment to the end of the last non-empty one */
export function iommuDmaUnmapSg(c: DmaIommuContext, dev: Device, sgl: Scatterlist[], nents: number, dir: DmaDirection, attrs: number, cpu: number): void {
  if (devUseSwiotlb(dev)) {
    unmapSgSwiotlb(c, dev, sgl, nents, dir, attrs, cpu);
    return;
  }
  // the first entry's start; a zero-length first entry leaves end at 0 and nothing is unmapped
  const start = sgl[0]!.dmaAddress;
  let end = 0n;
  for (let i = 0; i < nents; i++) {
    if (sgl[i]!.dmaLength === 0) break;
    end = sgl[i]!.dmaAddress + BigInt(sgl[i]!.dmaLength);
  }
  if (end !== 0n) iommuDmaUnmap(c, dev, start, Number(end - start), cpu);
}

export interface RemapBuffer {
  handle: bigint;
  pfns: number[];
}

/**
 * iommu_dma_alloc with a blocking gfp → iommu_dma_alloc_remap: pages from
 * __iommu_dma_alloc_pages (orders allowed by pgsize_bitmap within MAX_ORDER: 4 KiB, 2 MiB),
 * one IOVA range for the coherent mask, mapped through iommu_map_sg (a map event per physically
 * contiguous run). The handle is the IOVA.
 */
export function iommuDmaAlloc(c: DmaIommuContext, dev: Device, size: number, cpu: number): RemapBuffer | null {
  const dd = c.domainOf(dev);
  const m = c.m;
  size = iovaAlign(size);
  const count = size / GRANULE;
  const pfns: number[] = [];
  let orderMask = (dd.domain.pgsizeBitmap / GRANULE) & ((2 << MAX_ORDER) - 1);
  let left = count;
  while (left > 0) {
    let got = -1;
    let orderSize = 0;
    orderMask &= (2 << Math.floor(Math.log2(left))) - 1;
    while (orderMask !== 0) {
      const order = Math.floor(Math.log2(orderMask));
      orderSize = 1 << order;
      got = m.coherentPages.allocPages(order);
      if (got >= 0) break;
      orderMask &= ~orderSize;
    }
    if (got < 0) {
      freePagesSplit(c, pfns);
      return null;
    }
    for (let i = 0; i < orderSize; i++) pfns.push(got + i);
    left -= orderSize;
  }
  const iova = iommuDmaAllocIova(c, dev, dd, size, dev.coherentDmaMask, cpu);
  if (iova === 0n) {
    freePagesSplit(c, pfns);
    return null;
  }
  const sgt = sgFromPages(pfns, size);
  const ret = c.core.mapSg(dd.domain, iova, sgt.sgl, sgt.origNents, IOMMU_CACHE | IOMMU_READ | IOMMU_WRITE);
  if (ret < 0 || ret < size) {
    iommuDmaFreeIova(dd, iova, size, null, cpu);
    freePagesSplit(c, pfns);
    return null;
  }
  return { handle: iova, pfns };
}

/** __iommu_dma_free_pages: split_page'd blocks go back page by page, last first */
function freePagesSplit(c: DmaIommuContext, pfns: readonly number[]): void {
  for (let i = pfns.length - 1; i >= 0; i--) c.m.coherentPages.freePages(pfns[i]!, 0);
}

/** iommu_dma_free: unmap the handle for the caller's size, then release the page array */
export function iommuDmaFree(c: DmaIommuContext, dev: Device, size: number, buf: RemapBuffer, cpu: number): void {
  iommuDmaUnmap(c, dev, buf.handle, size, cpu);
  freePagesSplit(c, buf.pfns);
}

