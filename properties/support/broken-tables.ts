/**
 * Tables to break by hand, for the tests that prove the page-table invariant checks fire: a page
 * source for a table built outside any machine, and a root entry broken between two steps.
 */
import type { PageSource } from '../../intel-common/intel-pgtable.js';
import type { DmaPath } from '../../platform/dma-api.js';
import type { PhysMemory } from '../../vtd/memory.js';

/** table pages from pfn 0x100 up, in order, each zeroed when handed out */
export class TablePages implements PageSource {
  next = 0x100;
  constructor(private readonly memory: PhysMemory) {}
  alloc(): number {
    const pfn = this.next++;
    for (let i = 0; i < 512; i++) this.memory.writeQword(pfn * 4096 + i * 8, 0, 0);
    return pfn;
  }
  free(): void {}
  handedOut(pfn: number): boolean {
    return pfn >= 0x100 && pfn < this.next;
  }
}

/**
 * An `after` hook for the path suites' runners: after step 0, set bit 11 (SNP) in the root
 * table's entry 3 of device `dev`'s domain, a bit the driver never writes on a non-leaf entry.
 */
export function breakRootEntry(step: number, model: DmaPath): void {
  if (step !== 0) return;
  const mem = model.machine.memory;
  const at = model.domainPgtable(model.device('dev')).pgdPfn * 4096 + 3 * 8;
  const v = mem.readU64(at);
  mem.writeQword(at, Number(v & 0xffff_ffffn) | 0x800, Number(v >> 32n));
}

/** The check's message for that entry (IOVA pfn 0xc0000 on a 3-level table), after `after` of `pfns`. */
export function brokenRootEntry(after: string, pfns: string): RegExp {
  return new RegExp(`^page table after ${after} of pfns ${pfns}: the level-3 entry at 0x[0-9a-f]+ \\(iova pfn 0xc0000\\) is a non-leaf entry whose bits are not R\\|W \\(0x803\\)$`);
}
