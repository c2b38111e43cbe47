/**
 * The 5.10 driver's own trace events (include/trace/events/intel_iommu.h, system intel_iommu):
 * dma_map (map_single, bounce_map_single), dma_unmap (unmap_single, unmap_sg,
 * bounce_unmap_single) and dma_map_sg (map_sg, bounce_map_sg).
 */
import type { Device } from '../kernel/device.js';
import { sgPhys, type Scatterlist } from '../kernel/scatterlist.js';
import { printDmaMap, printDmaMapSg, printDmaUnmap, type TraceRing } from '../kernel/trace.js';

export type MapEvent = 'map_single' | 'bounce_map_single';
export type UnmapEvent = 'unmap_single' | 'unmap_sg' | 'bounce_unmap_single';
export type MapSgEvent = 'map_sg' | 'bounce_map_sg';

export function traceDmaMap(t: TraceRing, ev: MapEvent, dev: Device, devAddr: bigint, physAddr: number, size: number): void {
  t.emit('intel_iommu', ev, printDmaMap, { dev: dev.name, num: { dev_addr: devAddr, phys_addr: BigInt(physAddr), size: BigInt(size) } });
}

export function traceDmaUnmap(t: TraceRing, ev: UnmapEvent, dev: Device, devAddr: bigint, size: number): void {
  t.emit('intel_iommu', ev, printDmaUnmap, { dev: dev.name, num: { dev_addr: devAddr, size: BigInt(size) } });
}

/** one event per entry: [index/total], the entry's DMA address, sg_phys and DMA length */
export function traceDmaMapSg(t: TraceRing, ev: MapSgEvent, dev: Device, sgl: readonly Scatterlist[], nelems: number): void {
  for (let i = 0; i < nelems; i++) {
    const sg = sgl[i]!;
    const phys = BigInt(sgPhys(sg));
    t.emit('intel_iommu', ev, printDmaMapSg, { dev: dev.name, num: { index: BigInt(i + 1), total: BigInt(nelems), dev_addr: sg.dmaAddress, phys_addr: phys, size: BigInt(sg.dmaLength) } });
  }
}
