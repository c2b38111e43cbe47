/**
 * A real machine's physical addresses moved into the model's buffer area, consistently: every
 * real page keeps one model page (sharing between calls kept), pages contiguous in the trace stay
 * contiguous and pages that were not stay apart (so 6.1's run merging and 5.10's per-entry
 * mapping see the same lists), and each address keeps its offset within 2 MiB (page offsets, and
 * which runs a 2 MiB superpage could map, unchanged).
 */
import { PAGE_TABLE_REGION } from '../../vtd/regions.js';
import { VTD_PAGE_SIZE as PAGE } from '../../vtd/regs.js';

/** Where relocated buffers begin: 4 GiB, above the coherent and swiotlb regions. */
export const BUFFER_AREA_START = 0x1_0000_0000;
/** where they must end: the page-table region */
const BUFFER_AREA_END = PAGE_TABLE_REGION.start;
const SUPERPAGE = 2 * 1024 * 1024;

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
      while (k + n < sorted.length && sorted[k + n] === sorted[k]! + n) n++;
      const real = sorted[k]! * PAGE;
      // one page of gap at least (apart stays apart), then the real address's place in 2 MiB
      let model = this.runs.length === 0 ? cursor : cursor + PAGE;
      model += (((real % SUPERPAGE) - (model % SUPERPAGE)) + SUPERPAGE) % SUPERPAGE;
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
      const r = this.runs[mid]!;
      const first = r.real / PAGE;
      if (pfn < first) hi = mid - 1;
      else if (pfn >= first + r.pages) lo = mid + 1;
      else return r.model + (real - r.real);
    }
    throw new RangeError(`real address 0x${real.toString(16)} is not in any relocated run`);
  }
}

/** Real physical addresses must be ones a PTE can hold (below 2^52). */
export const REAL_PHYS_LIMIT = 2 ** 52;
