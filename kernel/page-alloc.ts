/**
 * The physical page allocator for coherent buffers: a buddy allocator over the coherent region
 * (orders 0 .. MAX_ORDER-1), always handing out the lowest free block so that both paths, given
 * the same calls, get the same pages. Pages are zeroed when allocated (__GFP_ZERO / the zeroing
 * both DMA paths do for coherent memory).
 */
import type { PhysMemory } from '../vtd/memory.js';
import { COHERENT_REGION, type PhysRegion } from '../vtd/regions.js';
import { PAGE_SIZE } from './release.js';

/** MAX_ORDER on x86-64: orders 0..10 (4 MiB blocks) */
export const MAX_ORDER = 11;

/** get_order(size): the order of the smallest block holding size bytes */
export function getOrder(size: number): number {
  let o = 0;
  while (PAGE_SIZE * 2 ** o < size) o++;
  return o;
}

export class PageAllocator {
  /** free blocks per order, each list sorted by pfn */
  private readonly free: number[][] = [];
  private allocated = 0;

  constructor(
    private readonly memory: PhysMemory,
    readonly region: PhysRegion = COHERENT_REGION,
  ) {
    for (let o = 0; o < MAX_ORDER; o++) this.free.push([]);
    const top = MAX_ORDER - 1;
    const span = 2 ** top;
    for (let pfn = region.start / PAGE_SIZE; pfn + span <= region.end / PAGE_SIZE; pfn += span) this.free[top]!.push(pfn);
  }

  /** pages currently allocated */
  get allocatedPages(): number {
    return this.allocated;
  }

  private insertFree(order: number, pfn: number): void {
    const l = this.free[order]!;
    let i = l.length;
    while (i > 0 && l[i - 1]! > pfn) i--;
    l.splice(i, 0, pfn);
  }

  /** alloc_pages(order) → first pfn of a zeroed block, or -1 when nothing is left */
  allocPages(order: number): number {
    let o = order;
    while (o < MAX_ORDER && this.free[o]!.length === 0) o++;
    if (o >= MAX_ORDER) return -1;
    const pfn = this.free[o]!.shift()!;
    while (o > order) {
      o--;
      this.insertFree(o, pfn + 2 ** o);
    }
    this.memory.fill(pfn * PAGE_SIZE, PAGE_SIZE * 2 ** order, 0);
    this.allocated += 2 ** order;
    return pfn;
  }

  /** __free_pages(pfn, order), merging buddies */
  freePages(pfn: number, order: number): void {
    this.allocated -= 2 ** order;
    const base = this.region.start / PAGE_SIZE;
    let p = pfn;
    let o = order;
    while (o < MAX_ORDER - 1) {
      const buddy = base + ((p - base) ^ 2 ** o);
      const l = this.free[o]!;
      const i = l.indexOf(buddy);
      if (i < 0) break;
      l.splice(i, 1);
      p = Math.min(p, buddy);
      o++;
    }
    this.insertFree(o, p);
  }
}
