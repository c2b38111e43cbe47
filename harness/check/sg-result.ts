/**
 * The rules a path's map_sg result must keep on its own, whatever the other path did: the first
 * `count` segments address exactly the entries' bytes in order, a segment merged of several
 * entries respects max_seg_size and the segment boundary, and every segment lies under the mask.
 */
import { must } from '../../kernel/assert.js';
import type { DmaPath } from '../../platform/dma-api.js';
import { iovaOffset, iovaPfn } from '../../kernel/bits.js';
import { VTD_PAGE_SIZE } from '../../vtd/regs.js';
import type { Mapping } from '../run/path-runner.js';
import type { Divergence } from './checker.js';

function sameRuns(a: ReadonlyArray<readonly [number, number]>, b: ReadonlyArray<readonly [number, number]>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]![0] !== b[i]![0] || a[i]![1] !== b[i]![1]) return false;
  return true;
}

/**
 * The stream and limits of one path's map_sg result: the first `count` segments must address
 * exactly the entries' bytes in order (bounce slots stand for their originals); a segment made
 * of several entries must respect max_seg_size and the segment boundary; every segment must lie
 * under the DMA mask.
 */
export function checkSgResult(
  path: 'legacy-intel' | 'dma-iommu',
  model: DmaPath,
  m: Mapping,
  i: number,
): Divergence[] {
  const out: Divergence[] = [];
  if (!m.ok || m.sgt === undefined || m.entries === undefined) return out;
  const segs = m.sgt.sgl.slice(0, m.count);
  // the physical runs the segments reach, with bounce slots mapped back to their originals
  const sw = model.machine.swiotlb;
  const segRuns: Array<[number, number]> = [];
  for (const s of segs) {
    let left = s.dmaLength;
    // page by page on numbers: the IOVA's page and offset (a 57-bit IOVA is not exact as one number)
    let pfn = iovaPfn(s.dmaAddress);
    let off = iovaOffset(s.dmaAddress);
    while (left > 0) {
      const n = Math.min(left, VTD_PAGE_SIZE - off);
      // iova_to_phys: 0 where nothing is mapped
      const physPfn = model.iovaPfnToPhysPfn(m.dev, pfn);
      let p = physPfn < 0 ? 0 : physPfn * VTD_PAGE_SIZE + off;
      if (sw.isSwiotlbBuffer(p)) p = sw.origOf(p);
      const last = segRuns[segRuns.length - 1];
      if (last !== undefined && last[0] + last[1] === p) last[1] += n;
      else segRuns.push([p, n]);
      left -= n;
      pfn++;
      off = 0;
    }
  }
  const entRuns: Array<[number, number]> = [];
  for (const e of m.entries) {
    const last = entRuns[entRuns.length - 1];
    if (last !== undefined && last[0] + last[1] === e.phys) last[1] += e.length;
    else entRuns.push([e.phys, e.length]);
  }
  if (!sameRuns(segRuns, entRuns)) {
    out.push({
      step: i,
      kind: 'sg-stream',
      path,
      detail: `on ${path} the ${m.count} returned segment(s) do not address the list's bytes in order`,
      legacy: path === 'legacy-intel' ? segRuns : 'as the list',
      generic: path === 'dma-iommu' ? segRuns : 'as the list',
    });
    return out;
  }
  const maxSeg = must(m.maxSegSize, 'the max_seg_size a list was mapped under');
  const mask = must(m.segBoundaryMask, 'the segment boundary a list was mapped under');
  // which entries make up each segment
  let e = 0;
  for (const s of segs) {
    const first = e;
    let sum = 0;
    while (e < m.entries.length && sum < s.dmaLength) sum += m.entries[e++]!.length;
    const merged = e - first > 1;
    const end = s.dmaAddress + BigInt(s.dmaLength) - 1n;
    const add = (rule: 'max-seg' | 'boundary' | 'dma-mask', detail: string, firstEntryExceeds = false): void => {
      out.push({
        step: i,
        kind: 'sg-limits',
        path,
        rule,
        firstEntryExceeds,
        detail,
        legacy: path === 'legacy-intel' ? { dma: `0x${s.dmaAddress.toString(16)}`, len: s.dmaLength } : 'within limits',
        generic: path === 'dma-iommu' ? { dma: `0x${s.dmaAddress.toString(16)}`, len: s.dmaLength } : 'within limits',
      });
    };
    if (merged && s.dmaLength > maxSeg) {
      add('max-seg', `on ${path} a merged segment of ${s.dmaLength} bytes exceeds max_seg_size ${maxSeg}`, must(m.entries[first], 'the first entry of the segment').length > maxSeg);
    }
    if (merged && mergeCrossesBoundary(s.dmaAddress, m.entries.slice(first, e), mask)) {
      add('boundary', `on ${path} merging made a segment cross the ${mask.toString(16)} segment boundary`);
    }
    if (end > m.dev.dmaMask) add('dma-mask', `on ${path} a segment ends above the DMA mask`);
  }
  return out;
}

/**
 * Whether merging put a segment boundary inside a segment: at a junction between two merged
 * entries, or inside an entry that fits in one boundary window. A boundary inside an entry longer
 * than the window is that entry's own (dma-iommu never splits an entry), not the merge's.
 */
function mergeCrossesBoundary(start: bigint, entries: ReadonlyArray<{ length: number }>, mask: bigint): boolean {
  const window = mask + 1n;
  let at = start;
  for (const [k, e] of entries.entries()) {
    const end = at + BigInt(e.length);
    if (k > 0 && at % window === 0n) return true;
    const crosses = at / window !== (end - 1n) / window;
    if (crosses && BigInt(e.length) <= window) return true;
    at = end;
  }
  return false;
}

