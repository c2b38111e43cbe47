/**
 * bounce_dma_ops as Linux 5.10.262 has them: untrusted PCI devices get a page-aligned swiotlb
 * slot whenever the buffer's address or size is not page-aligned, the padding zeroed, and a
 * page-aligned handle; each sg entry is bounced on its own (kernel-semantics 2.10, 10.10).
 */
import { DMA_ATTR_SKIP_CPU_SYNC, DMA_MAPPING_ERROR, DmaDirection, devPrefix, type Device } from '../kernel/device.js';
import { alignedNrpages } from '../intel-common/intel-pgtable.js';
import type { Scatterlist } from '../kernel/scatterlist.js';
import { sgPhys } from '../kernel/scatterlist.js';
import { SWIOTLB_MAP_ERROR, zeroBouncePadding } from '../kernel/swiotlb.js';
import { alignUp } from '../kernel/release.js';
import { VTD_PAGE_SIZE } from '../vtd/regs.js';
import { domainMapping } from './domain.js';
import { intelAllocIova, intelUnmap, legacyProt, type LegacyContext } from './dma-ops.js';
import { traceDmaMap, traceDmaMapSg, traceDmaUnmap } from './trace-events.js';
import { pfnAddr } from '../kernel/bits.js';

/** bounce_map_single */
export function bounceMapSingle(c: LegacyContext, dev: Device, paddr: number, size: number, dir: DmaDirection, attrs: number, dmaMask: bigint, cpu: number): bigint {
  const alignedSize = alignUp(size, VTD_PAGE_SIZE);
  const d = c.domainOf(dev);
  const nrpages = alignedNrpages(0, size);
  const iovaPfn = intelAllocIova(c, dev, d, nrpages, dmaMask, cpu);
  if (iovaPfn === 0) return DMA_MAPPING_ERROR;
  const prot = legacyProt(c, dir);
  let tlb = paddr;
  const sw = c.m.swiotlb;
  if (paddr % VTD_PAGE_SIZE !== 0 || size % VTD_PAGE_SIZE !== 0) {
    tlb = sw.mapSingle(dev, cpu, paddr, size, alignedSize, 0, attrs);
    if (tlb === SWIOTLB_MAP_ERROR) return bounceFailed(c, dev, d.iovad, iovaPfn, nrpages, paddr, size, dir, cpu);
    zeroBouncePadding(c.m.memory, tlb, size, alignedSize, dir, attrs);
  }
  const ret = domainMapping(c.m, c.pt, d, iovaPfn, null, Math.floor(tlb / VTD_PAGE_SIZE), nrpages, prot);
  if (ret !== 0) {
    if (sw.isSwiotlbBuffer(tlb)) sw.unmapSingle(dev, tlb, size, alignedSize, dir, attrs);
    return bounceFailed(c, dev, d.iovad, iovaPfn, nrpages, paddr, size, dir, cpu);
  }
  const handle = pfnAddr(iovaPfn);
  traceDmaMap(c.m.trace, 'bounce_map_single', dev, handle, paddr, size);
  return handle;
}

function bounceFailed(
  c: LegacyContext,
  dev: Device,
  iovad: { freeIovaFast(cpu: number, pfn: number, size: number): void },
  iovaPfn: number,
  nrpages: number,
  paddr: number,
  size: number,
  dir: DmaDirection,
  cpu: number,
): bigint {
  iovad.freeIovaFast(cpu, iovaPfn, nrpages);
  c.m.log.print(`${devPrefix(dev)}DMAR: Device bounce map: ${size.toString(16)}@${paddr.toString(16)} dir ${dir} --- failed`);
  return DMA_MAPPING_ERROR;
}

/** bounce_unmap_single: find the slot through the page tables, unmap (always strict), copy back. */
export function bounceUnmapSingle(c: LegacyContext, dev: Device, devAddr: bigint, size: number, dir: DmaDirection, attrs: number, cpu: number): void {
  const alignedSize = alignUp(size, VTD_PAGE_SIZE);
  const d = c.domainOf(dev);
  const tlb = c.pt.iovaToPhys(d, devAddr);
  if (tlb === 0n) {
    c.m.log.print(`WARNING: bounce_unmap_single: no translation for ${devPrefix(dev)}0x${devAddr.toString(16)}`);
    return;
  }
  intelUnmap(c, dev, devAddr, size, cpu);
  if (c.m.swiotlb.isSwiotlbBuffer(Number(tlb))) c.m.swiotlb.unmapSingle(dev, Number(tlb), size, alignedSize, dir, attrs);
  traceDmaUnmap(c.m.trace, 'bounce_unmap_single', dev, devAddr, size);
}

/** bounce_sync_single: only bounced mappings have anything to copy. */
export function bounceSyncSingle(c: LegacyContext, dev: Device, addr: bigint, size: number, dir: DmaDirection, forCpu: boolean): void {
  const tlb = Number(c.pt.iovaToPhys(c.domainOf(dev), addr));
  if (!c.m.swiotlb.isSwiotlbBuffer(tlb)) return;
  if (forCpu) c.m.swiotlb.syncForCpu(dev, tlb, size, dir);
  else c.m.swiotlb.syncForDevice(dev, tlb, size, dir);
}

/** bounce_map_sg: each entry its own bounce_map_page; on failure undo with SKIP_CPU_SYNC. */
export function bounceMapSg(c: LegacyContext, dev: Device, sgl: Scatterlist[], nelems: number, dir: DmaDirection, attrs: number, cpu: number): number {
  for (let i = 0; i < nelems; i++) {
    const sg = sgl[i]!;
    sg.dmaAddress = bounceMapSingle(c, dev, sgPhys(sg), sg.length, dir, attrs, dev.dmaMask, cpu);
    if (sg.dmaAddress === DMA_MAPPING_ERROR) {
      bounceUnmapSg(c, dev, sgl, i, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC, cpu);
      return 0;
    }
    sg.dmaLength = sg.length;
  }
  traceDmaMapSg(c.m.trace, 'bounce_map_sg', dev, sgl, nelems);
  return nelems;
}

/** bounce_unmap_sg */
export function bounceUnmapSg(c: LegacyContext, dev: Device, sgl: Scatterlist[], nelems: number, dir: DmaDirection, attrs: number, cpu: number): void {
  for (let i = 0; i < nelems; i++) bounceUnmapSingle(c, dev, sgl[i]!.dmaAddress, sgl[i]!.dmaLength, dir, attrs, cpu);
}

/**
 * bounce_sync_sg_for_cpu / _for_device: per entry, by DMA address and DMA length. Seeded bug
 * legacySyncSgForCpuToDevice: 5.10's sg for-cpu variant syncs each entry toward the CPU; here
 * it asks for the for-device target instead.
 */
export function bounceSyncSg(c: LegacyContext, dev: Device, sgl: Scatterlist[], nelems: number, dir: DmaDirection, forCpu: boolean): void {
  const target = forCpu && c.faults.legacySyncSgForCpuToDevice === true ? false : forCpu;
  for (let i = 0; i < nelems; i++) bounceSyncSingle(c, dev, sgl[i]!.dmaAddress, sgl[i]!.dmaLength, dir, target);
}
