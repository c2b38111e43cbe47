/**
 * Fixed physical regions of the simulated machine, in one place. Scenario buffers must not
 * overlap any of them (the scenario validator refuses such addresses), so a device read through
 * a wrong translation shows bytes that no buffer owns.
 *
 * Every address stays below 2^39: QEMU's intel-iommu with aw-bits 39 treats PTE address bits at
 * or above the address width as reserved, and 39 is the narrowest width modelled.
 */

export interface PhysRegion {
  readonly name: string;
  readonly start: number;
  /** exclusive */
  readonly end: number;
}

/** Coherent allocations (the page allocator of kernel/). */
export const COHERENT_REGION: PhysRegion = { name: 'coherent', start: 0x6000_0000, end: 0x7000_0000 };

/**
 * The swiotlb pool: 64 MiB (IO_TLB_DEFAULT_SIZE), placed where the real 6.1 guest with 5 GiB of
 * memory placed it ("software IO TLB: mapped [mem 0x7beb3000-0x7feb3000] (64MB)",
 * kernel-semantics 9.10), so bounced addresses in trace lines read like the real ones. Page-aligned,
 * as memblock_alloc_low gives it (kernel-semantics 10.10).
 */
export const SWIOTLB_REGION: PhysRegion = { name: 'swiotlb', start: 0x7beb_3000, end: 0x7feb_3000 };

/** Root, context and page-table pages, and the invalidation queue. */
export const PAGE_TABLE_REGION: PhysRegion = { name: 'page-tables', start: 0x7f_0000_0000, end: 0x7f_4000_0000 };

export const FIXED_REGIONS: readonly PhysRegion[] = [COHERENT_REGION, SWIOTLB_REGION, PAGE_TABLE_REGION];

/** Highest physical address + 1 that a scenario buffer may use (2^39). */
export const PHYS_LIMIT = 2 ** 39;

/** The fixed region [start, start + len) overlaps, if any. */
export function overlappingRegion(start: number, len: number): PhysRegion | undefined {
  const end = start + Math.max(len, 1);
  return FIXED_REGIONS.find((r) => start < r.end && end > r.start);
}

export function inRegion(r: PhysRegion, addr: number): boolean {
  return addr >= r.start && addr < r.end;
}
