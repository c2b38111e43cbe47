/**
 * intel_dma_ops as Linux 5.10.262 has them (drivers/iommu/intel/iommu.c): the driver's own
 * DMA-API implementation with its own IOVA handling (kernel-semantics 2.2-2.9, 10.3-10.9).
 */
import { DMA_MAPPING_ERROR, DmaDirection, devPrefix, dmaBitMask, type Device } from '../kernel/device.js';
import { alignedNrpages, type IntelPageTable } from '../intel-common/intel-pgtable.js';
import type { Machine } from '../platform/machine.js';
import { getOrder } from '../kernel/page-alloc.js';
import { PAGE_SIZE, alignUp, roundupPowOfTwo } from '../kernel/release.js';
import type { Scatterlist } from '../kernel/scatterlist.js';
import { DMA_PTE_READ, DMA_PTE_WRITE, VTD_PAGE_SIZE, agawToLevel } from '../vtd/regs.js';
import { domainMapping, type LegacyDomain } from './domain.js';
import { traceDmaMap, traceDmaMapSg, traceDmaUnmap } from './trace-events.js';
import { iovaOffset, iovaPfn, pageAlignDown, pfnAddr } from '../kernel/bits.js';

/** Seeded bugs for proving the harness can fail; all off by default. */
export interface LegacyFaults {
  /** bounce_sync_sg_for_cpu syncs each entry with the for-device target (the single variant stays right) */
  legacySyncSgForCpuToDevice?: boolean;
}

/** What every legacy op needs: the machine, the table code, the device's domain, the options. */
export interface LegacyContext {
  m: Machine;
  pt: IntelPageTable;
  domainOf(dev: Device): LegacyDomain;
  /** intel_iommu_strict (the `strict` option, or forced by caching mode) */
  strict: boolean;
  /** intel_iommu=forcedac */
  forcedac: boolean;
  faults: LegacyFaults;
}

/** DOMAIN_MAX_ADDR(gaw): the address of the last page of the width */
function domainMaxAddr(gaw: number): bigint {
  return pfnAddr(2 ** (gaw - 12) - 1);
}

const DMA_BIT_MASK_32 = dmaBitMask(32);

/**
 * intel_alloc_iova: clamp the mask to the domain width, round the page count up to a power of
 * two, try below 4 GiB first for any device (PCI or not) unless forcedac, then the whole mask
 * with the rcache flush-and-retry. Returns the pfn or 0 (after dev_err_once).
 */
export function intelAllocIova(c: LegacyContext, dev: Device, d: LegacyDomain, nrpages: number, dmaMask: bigint, cpu: number): number {
  const max = domainMaxAddr(d.gaw);
  const mask = dmaMask < max ? dmaMask : max;
  const pages = roundupPowOfTwo(nrpages);
  if (!c.forcedac && mask > DMA_BIT_MASK_32) {
    const pfn = d.iovad.allocIovaFast(cpu, pages, iovaPfn(DMA_BIT_MASK_32), false);
    if (pfn !== 0) return pfn;
  }
  const pfn = d.iovad.allocIovaFast(cpu, pages, iovaPfn(mask), true);
  if (pfn === 0) {
    c.m.stats.iovaAllocFailures++;
    c.m.log.once('intel_alloc_iova', `${devPrefix(dev)}DMAR: Allocating ${pages}-page iova failed`);
  }
  return pfn;
}

/**
 * The prot block __intel_map_single, intel_map_sg and bounce_map_single each open-code: READ for
 * TO_DEVICE/BIDIRECTIONAL or when the unit lacks ZLR, WRITE for FROM_DEVICE/BIDIRECTIONAL, never
 * SNP. (__domain_mapping then sets bit 0 on every leaf anyway.)
 */
export function legacyProt(c: LegacyContext, dir: DmaDirection): number {
  let prot = 0;
  if (dir === DmaDirection.ToDevice || dir === DmaDirection.Bidirectional || !c.m.hw.caps.zlr) prot |= DMA_PTE_READ;
  if (dir === DmaDirection.FromDevice || dir === DmaDirection.Bidirectional) prot |= DMA_PTE_WRITE;
  return prot;
}

/** __intel_map_single: one IOVA range (rounded to a power of two), npages mapped, offset kept. */
export function intelMapSingle(c: LegacyContext, dev: Device, paddr: number, size: number, dir: DmaDirection, dmaMask: bigint, cpu: number): bigint {
  const d = c.domainOf(dev);
  const npages = alignedNrpages(paddr, size);
  const pfn = intelAllocIova(c, dev, d, npages, dmaMask, cpu);
  if (pfn !== 0) {
    const prot = legacyProt(c, dir);
    const ret = domainMapping(c.m, c.pt, d, pfn, null, Math.floor(paddr / VTD_PAGE_SIZE), npages, prot);
    if (ret === 0) {
      const handle = pfnAddr(pfn) + BigInt(paddr % VTD_PAGE_SIZE);
      traceDmaMap(c.m.trace, 'map_single', dev, handle, paddr, npages * VTD_PAGE_SIZE);
      return handle;
    }
    d.iovad.freeIovaFast(cpu, pfn, npages);
  }
  c.m.log.print(`${devPrefix(dev)}DMAR: Device request: ${npages.toString(16)}@${paddr.toString(16)} dir ${dir} --- failed`);
  return DMA_MAPPING_ERROR;
}

/** intel_map_page */
export function intelMapPage(c: LegacyContext, dev: Device, phys: number, size: number, dir: DmaDirection, cpu: number): bigint {
  return intelMapSingle(c, dev, phys, size, dir, dev.dmaMask, cpu);
}

/**
 * intel_unmap: clear the PTEs now; strict (the option, an untrusted PCI device, or no flush
 * queue) flushes the pages and frees the IOVA at once, otherwise the IOVA and the freed tables
 * wait in the flush queue. The IOVA is freed with the unrounded page count.
 */
export function intelUnmap(c: LegacyContext, dev: Device, devAddr: bigint, size: number, cpu: number): void {
  const d = c.domainOf(dev);
  const pfn = iovaPfn(devAddr);
  const nrpages = alignedNrpages(iovaOffset(devAddr), size);
  const freelist: number[] = [];
  c.pt.domainUnmap(d, pfn, pfn + nrpages - 1, freelist);
  if (c.strict || (dev.pci && dev.untrusted) || d.fq === null) {
    c.m.dmar.flushIotlbPsi(d.did, pfn, nrpages, freelist.length === 0);
    d.iovad.freeIovaFast(cpu, pfn, nrpages);
    c.pt.freeList(freelist);
  } else {
    d.fq.queueIova(cpu, pfn, nrpages, freelist);
  }
  traceDmaUnmap(c.m.trace, 'unmap_single', dev, devAddr, size);
}

/**
 * intel_map_sg: one IOVA range for the whole list, entries back to back page by page with their
 * offsets kept, nothing merged, max_seg_size and seg_boundary ignored; returns nelems.
 */
export function intelMapSg(c: LegacyContext, dev: Device, sgl: Scatterlist[], nelems: number, dir: DmaDirection, cpu: number): number {
  const d = c.domainOf(dev);
  let size = 0;
  for (let i = 0; i < nelems; i++) size += alignedNrpages(sgl[i]!.offset, sgl[i]!.length);
  const iovaPfn = intelAllocIova(c, dev, d, size, dev.dmaMask, cpu);
  if (iovaPfn === 0) {
    sgl[0]!.dmaLength = 0;
    return 0;
  }
  const prot = legacyProt(c, dir);
  const ret = domainMapping(c.m, c.pt, d, iovaPfn, sgl, 0, size, prot);
  if (ret !== 0) {
    c.pt.freePagetable(d, iovaPfn, iovaPfn + size - 1, agawToLevel(d.agaw) + 1);
    d.iovad.freeIovaFast(cpu, iovaPfn, size);
    return 0;
  }
  traceDmaMapSg(c.m.trace, 'map_sg', dev, sgl, nelems);
  return nelems;
}

/** intel_unmap_sg: from the first entry's page, the sum of every entry's pages. */
export function intelUnmapSg(c: LegacyContext, dev: Device, sgl: Scatterlist[], nelems: number, cpu: number): void {
  const start = pageAlignDown(sgl[0]!.dmaAddress);
  let nrpages = 0;
  for (let i = 0; i < nelems; i++) nrpages += alignedNrpages(iovaOffset(sgl[i]!.dmaAddress), sgl[i]!.dmaLength);
  intelUnmap(c, dev, start, nrpages * VTD_PAGE_SIZE, cpu);
  traceDmaUnmap(c.m.trace, 'unmap_sg', dev, start, nrpages * VTD_PAGE_SIZE);
}

export interface CoherentBuffer {
  handle: bigint;
  /** physical address of the (contiguous) pages */
  phys: number;
  order: number;
}

/**
 * intel_alloc_coherent: PAGE_ALIGN(size) in one block of get_order(size), zeroed, mapped
 * BIDIRECTIONAL through __intel_map_single with the coherent mask.
 */
export function intelAllocCoherent(c: LegacyContext, dev: Device, size: number, cpu: number): CoherentBuffer | null {
  size = alignUp(size, PAGE_SIZE); // PAGE_ALIGN
  const order = getOrder(size);
  const pfn = c.m.coherentPages.allocPages(order);
  if (pfn < 0) return null;
  const phys = pfn * PAGE_SIZE;
  const handle = intelMapSingle(c, dev, phys, size, DmaDirection.Bidirectional, dev.coherentDmaMask, cpu);
  if (handle !== DMA_MAPPING_ERROR) return { handle, phys, order };
  c.m.coherentPages.freePages(pfn, order);
  return null;
}

/** intel_free_coherent */
export function intelFreeCoherent(c: LegacyContext, dev: Device, size: number, buf: CoherentBuffer, cpu: number): void {
  size = alignUp(size, PAGE_SIZE); // PAGE_ALIGN
  intelUnmap(c, dev, buf.handle, size, cpu);
  c.m.coherentPages.freePages(buf.phys / PAGE_SIZE, buf.order);
}
