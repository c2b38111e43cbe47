/**
 * A real machine's physical addresses moved into the model's buffer area, consistently: every
 * real page keeps one model page (sharing between calls kept), pages contiguous in the trace stay
 * contiguous and pages that were not stay apart (so 6.1's run merging and 5.10's per-entry
 * mapping see the same lists), and each address keeps its offset within 2 MiB (page offsets, and
 * which runs a 2 MiB superpage could map, unchanged).
 */
import { PAGE_TABLE_REGION } from '../../../vtd/regions.js';
import { VTD_PAGE_SIZE as PAGE, lvlToNrPages, modPow2 } from '../../../vtd/regs.js';
import { must } from '../../../kernel/assert.js';

/** Where relocated buffers begin: 4 GiB, above the coherent and swiotlb regions. */
const BUFFER_AREA_START = 0x1_0000_0000;
/** where they must end: the page-table region */
const BUFFER_AREA_END = PAGE_TABLE_REGION.start;
/**
 * 2 MiB, what a level-2 entry maps. Offsets within it are kept because both releases map a
 * superpage only where the IOVA and the physical address share their offset in it: 5.10's
 * hardware_largepage_caps and 6.1's iommu_pgsize look at the IOVA and the address together.
 */
const SUPERPAGE = lvlToNrPages(2) * PAGE;

export interface PhysRun {
  /** first real page's address */
  real: number;
  /** where it is in the model */
  model: number;
  pages: number;
}

export class Relocation {
  readonly runs: PhysRun[] = [];

  /** `pfns`: every real page frame the trace's calls touch (any order, repeats allowed). */
  constructor(pfns: Iterable<number>) {
    const sorted = [...new Set(pfns)].sort((a, b) => a - b);
    let cursor = BUFFER_AREA_START;
    for (let k = 0; k < sorted.length; ) {
      let n = 1;
      const pfn = must(sorted[k], 'a page of the trace');
      while (k + n < sorted.length && sorted[k + n] === pfn + n) n++;
      const real = pfn * PAGE;
      // one page of gap at least (apart stays apart), then the real address's place in 2 MiB
      let model = this.runs.length === 0 ? cursor : cursor + PAGE;
      model += modPow2(modPow2(real, SUPERPAGE) - modPow2(model, SUPERPAGE) + SUPERPAGE, SUPERPAGE);
      this.runs.push({ real, model, pages: n });
      cursor = model + n * PAGE;
      k += n;
    }
    if (cursor > BUFFER_AREA_END) throw new RangeError(`the trace's buffers need ${cursor - BUFFER_AREA_START} bytes of buffer area, the model has ${BUFFER_AREA_END - BUFFER_AREA_START}`);
  }

  /** A real physical address (offset kept) in the model. */
  toModel(real: number): number {
    const pfn = Math.floor(real / PAGE);
    let lo = 0;
    let hi = this.runs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = must(this.runs[mid], 'a run');
      const first = r.real / PAGE;
      if (pfn < first) hi = mid - 1;
      else if (pfn >= first + r.pages) lo = mid + 1;
      else return r.model + (real - r.real);
    }
    throw new RangeError(`real address 0x${real.toString(16)} is not in any relocated run`);
  }
}
