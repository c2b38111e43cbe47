/**
 * struct scatterlist and struct sg_table (lib/scatterlist.c, include/linux/scatterlist.h):
 * the CPU side (page, offset, length), the DMA side (dma_address, dma_length) and the end
 * marker that sg_next() stops at -- which is how the i915 iterators walked past the mapped
 * count to the end of the list.
 */
import { DMA_MAPPING_ERROR } from './device.js';
import { PAGE_SIZE } from './release.js';

export interface Scatterlist {
  /** page_link: the page frame */
  pagePfn: number;
  /** byte offset into the page (below PAGE_SIZE for entries made by sg_set_buf) */
  offset: number;
  /** CPU length */
  length: number;
  /** sg_dma_address */
  dmaAddress: bigint;
  /** sg_dma_len */
  dmaLength: number;
  /** sg_is_last */
  end: boolean;
}

export interface SgTable {
  sgl: Scatterlist[];
  /** mapped count (what dma_map_sgtable stores) */
  nents: number;
  /** entries allocated */
  origNents: number;
}

/** sg_phys */
export function sgPhys(sg: Scatterlist): number {
  return sg.pagePfn * PAGE_SIZE + sg.offset;
}

/** sg_init_table + sg_set_buf for each (phys, length): the list a driver builds. */
export function sgFromBuffers(bufs: ReadonlyArray<{ phys: number; length: number }>): SgTable {
  const sgl = bufs.map((b, i) => ({
    pagePfn: Math.floor(b.phys / PAGE_SIZE),
    offset: b.phys % PAGE_SIZE,
    length: b.length,
    dmaAddress: 0n,
    dmaLength: 0,
    end: i === bufs.length - 1,
  }));
  return { sgl, nents: sgl.length, origNents: sgl.length };
}

/** sg_next: the following entry, or -1 at the end marker. */
export function sgNext(sgl: readonly Scatterlist[], i: number): number {
  return sgl[i]!.end ? -1 : i + 1;
}

/** sg_dma_is_error-style helper: the marker __finalise_sg leaves in unused entries */
export function sgDmaUnused(sg: Scatterlist): boolean {
  return sg.dmaAddress === DMA_MAPPING_ERROR && sg.dmaLength === 0;
}

/**
 * sg_alloc_table_from_pages(pages, n, offset 0, size): physically adjacent pages share one
 * entry (segments up to UINT_MAX). Used by 6.1's non-contiguous coherent allocation.
 */
export function sgFromPages(pfns: readonly number[], size: number): SgTable {
  const runs: Array<{ phys: number; length: number }> = [];
  let left = size;
  for (let i = 0; i < pfns.length; i++) {
    const len = Math.min(PAGE_SIZE, left);
    left -= len;
    const last = runs[runs.length - 1];
    if (last !== undefined && pfns[i] === pfns[i - 1]! + 1 && last.length + len <= 0xffff_ffff) last.length += len;
    else runs.push({ phys: pfns[i]! * PAGE_SIZE, length: len });
  }
  return sgFromBuffers(runs);
}
