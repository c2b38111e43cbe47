/** Kernel struct device instances for a scenario's devices (each path gets its own). */
import { dmaBitMask, type Device } from '../../kernel/device.js';
import { parseBdf } from '../../vtd/entries.js';
import type { ScenarioDevice } from '../workload/scenario.js';

/** The driver name the scenario's devices are bound to, as dev_printk prints it. */
export const SCENARIO_DRIVER = 'dmadiff';

export function makeDevice(d: ScenarioDevice): Device {
  return {
    name: `0000:${d.bdf}`,
    driver: SCENARIO_DRIVER,
    sid: parseBdf(d.bdf)!,
    pci: d.pci,
    untrusted: d.untrusted,
    dmaMask: dmaBitMask(d.dmaMask),
    coherentDmaMask: dmaBitMask(d.coherentMask),
    maxSegSize: d.maxSegSize,
    segBoundaryMask: d.segBoundaryMask,
    minAlignMask: 0,
    busDmaLimit: 0n,
  };
}

/**
 * Whether a buffer mapped for an untrusted device goes through a bounce slot: both releases
 * bounce exactly the buffers not made of whole pages (5.10 bounce_map_single, 6.1
 * iommu_dma_map_page's iova_offset(phys) || !iova_aligned(size), 4 KiB granule).
 */
export function needsBounce(phys: number, size: number): boolean {
  return phys % 4096 !== 0 || size % 4096 !== 0;
}
