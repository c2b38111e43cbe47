/**
 * Which mapping of a path a physical page belongs to, in words a maintainer reads: a buffer page
 * of a mapping ("m1 +0x1000"), a swiotlb slot and the buffer it bounces, a coherent buffer's
 * page, a page-table page, or nothing the scenario mapped.
 */
import type { Mapping, PathRunner } from '../harness/run/path-runner.js';
import { hex } from '../harness/workload/scenario.js';
import { COHERENT_REGION, PAGE_TABLE_REGION, SWIOTLB_REGION, inRegion } from '../vtd/regions.js';
import { VTD_PAGE_SIZE } from '../vtd/regs.js';


/** The buffers of a mapping as the caller gave them (phys, length). */
function buffersOf(m: Mapping): Array<{ name: string; phys: number; length: number }> {
  if (m.kind === 'single') return [{ name: m.name, phys: m.phys, length: m.size }];
  if (m.kind === 'sg') return (m.entries ?? []).map((e, k) => ({ name: `${m.name} entry ${k}`, phys: e.phys, length: e.length }));
  return [];
}

/** The mapping whose buffer holds physical address `addr` (live mappings first), as "m1 +0x10 (live)". */
function bufferAt(r: PathRunner, addr: number): string | undefined {
  for (const live of [true, false]) {
    for (const m of r.mappings.values()) {
      if (m.live !== live) continue;
      for (const b of buffersOf(m)) {
        // the IOMMU maps whole pages: a page of the buffer counts, not only its bytes
        const lo = b.phys - (b.phys % VTD_PAGE_SIZE);
        const hi = b.phys + Math.max(b.length, 1);
        if (addr >= lo && addr < hi + ((VTD_PAGE_SIZE - (hi % VTD_PAGE_SIZE)) % VTD_PAGE_SIZE)) {
          const rel = addr - b.phys;
          const where = rel < 0 ? `${-rel} byte(s) before ${b.name}` : rel >= b.length ? `${b.name} +${hex(rel)}, past its end` : `${b.name} +${hex(rel)}`;
          return `${where} (${live ? 'live' : 'unmapped'})`;
        }
      }
    }
  }
  return undefined;
}

/** What physical page `pfn` is to this path. */
export function attributePage(r: PathRunner, pfn: number): string {
  const addr = pfn * VTD_PAGE_SIZE;
  if (inRegion(SWIOTLB_REGION, addr)) {
    const orig = r.model.machine.swiotlb.origOf(addr);
    if (orig < 0) return `a free swiotlb slot (phys ${hex(addr)})`;
    return `the swiotlb slot (phys ${hex(addr)}) bouncing ${bufferAt(r, orig) ?? `phys ${hex(orig)}`}`;
  }
  if (inRegion(COHERENT_REGION, addr)) {
    // a freed buffer's pages may back a newer one (the allocator hands out the lowest free
    // block): live buffers first, as trace accounting's physTarget does
    for (const live of [true, false]) {
      for (const m of r.mappings.values()) {
        if (m.live !== live) continue;
        const k = m.coherent?.pfns.indexOf(pfn) ?? -1;
        if (k >= 0) return `${m.name} page ${k} (coherent, ${live ? 'live' : 'freed'})`;
      }
    }
    return `a coherent page of no buffer (phys ${hex(addr)})`;
  }
  if (inRegion(PAGE_TABLE_REGION, addr)) return `a paging-structure page (phys ${hex(addr)})`;
  return bufferAt(r, addr) ?? `phys ${hex(addr)}, which no mapping of the scenario holds`;
}
