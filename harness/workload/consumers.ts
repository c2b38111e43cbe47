/**
 * Consumer models: how a driver turns a mapped scatterlist into device accesses.
 *
 * - correct: honours dma_map_sg's count and reads each of the first `count` segments by its DMA
 *   length (for_each_sgtable_dma_sg).
 * - i915: the i915 iterators before 8a473dbadccf (__sgt_iter / for_each_sgt_daddr): every entry
 *   up to the list's end marker, each from its CPU offset over its CPU length in 4 KiB GTT pages at
 *   sg_dma_address + curr. The GPU reads whole pages through its GTT.
 * - i915-fixed: after 8a473dbadccf: DMA lengths, and the walk stops at an entry with
 *   sg_dma_len == 0.
 */
import type { Scatterlist } from '../../kernel/scatterlist.js';
import { sgNext } from '../../kernel/scatterlist.js';
import type { Consumer } from './scenario.js';

export interface DeviceAccessPiece {
  iova: bigint;
  len: number;
}

const GTT_PAGE = 4096n;

function gttPages(sg: Scatterlist, span: number): DeviceAccessPiece[] {
  const out: DeviceAccessPiece[] = [];
  for (let curr = sg.offset; curr < sg.offset + span; curr += 4096) {
    // the GTT PTE takes the page of dma + curr; the GPU reads the whole page
    const addr = BigInt.asUintN(64, sg.dmaAddress + BigInt(curr));
    out.push({ iova: addr - (addr % GTT_PAGE), len: 4096 });
  }
  return out;
}

/** The device accesses a consumer makes for a list mapped with `count` segments. */
export function consumerAccesses(consumer: Consumer, sgl: readonly Scatterlist[], count: number): DeviceAccessPiece[] {
  const out: DeviceAccessPiece[] = [];
  if (consumer === 'correct') {
    for (let i = 0; i < count; i++) out.push({ iova: sgl[i]!.dmaAddress, len: sgl[i]!.dmaLength });
    return out;
  }
  for (let i = 0; i >= 0; i = sgNext(sgl, i)) {
    const sg = sgl[i]!;
    if (consumer === 'i915') out.push(...gttPages(sg, sg.length));
    else {
      if (sg.dmaLength === 0) break;
      out.push(...gttPages(sg, sg.dmaLength));
    }
  }
  return out;
}
