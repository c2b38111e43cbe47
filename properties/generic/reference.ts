/**
 * An independent, hand-written transcription of Linux 6.1.192's iommu_dma_map_sg for a trusted
 * device on a fresh domain, used as the oracle of the map_sg property suite. Nothing here is
 * imported from the model: each step follows the C source (drivers/iommu/dma-iommu.c
 * iommu_dma_map_sg / __finalise_sg / iommu_dma_unmap_sg, drivers/iommu/iommu.c __iommu_map_sg,
 * drivers/iommu/iova.c alloc_iova_fast / __alloc_and_insert_iova_range), with C's integer types
 * made explicit (size_t and unsigned long as 64-bit BigInt, unsigned int as `>>> 0`).
 */

const GRANULE = 4096;
const U64 = (1n << 64n) - 1n;

export interface SgIn {
  phys: number;
  length: number;
}

export interface SgRefResult {
  /** the IOVA range alloc_iova_fast returned (pfn << 12) */
  iova: bigint;
  /** iova_len in bytes (what is mapped, pads included) */
  iovaLen: number;
  count: number;
  /** every entry's (dma_address, dma_len) after __finalise_sg, trailing ones included */
  dma: Array<{ dma: bigint; len: number }>;
  /** __iommu_map_sg's physically contiguous runs: (iova, paddr, size), one iommu:map each */
  runs: Array<{ iova: bigint; paddr: number; size: number }>;
  /** iommu_dma_unmap_sg → __iommu_dma_unmap: (aligned start, aligned size) */
  unmap: { iova: bigint; size: number };
}

function iovaAlign(n: number): number {
  return Math.ceil(n / GRANULE) * GRANULE;
}

/** roundup_pow_of_two */
function pow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/**
 * The IOVA a fresh 6.1 domain (nothing allocated, nothing reserved) hands a PCI device with a
 * mask above 32 bits for `pages` granules: SAC first, limit pfn 0xfffff; alloc_iova_fast rounds
 * below 32 to a power of two; __alloc_and_insert_iova_range aligns the start to
 * 2^fls(size - 1) and takes the highest candidate below L = 0x100000.
 */
export function freshSacIova(pages: number): bigint {
  const size = pages < 32 ? pow2(pages) : pages;
  const align = pow2(size);
  const pfn = Math.floor((0x100000 - size) / align) * align;
  return BigInt(pfn) * 4096n;
}

/** iommu_dma_map_sg for a trusted device with the given seg_boundary_mask and max_seg_size. */
export function refMapSg(entries: readonly SgIn[], segBoundaryMask: bigint, maxSegSize: number): SgRefResult {
  // the layout pass: stash (s_iova_off, length), align each entry, pad the previous one
  const off: number[] = [];
  const len: number[] = [];
  const physAligned: number[] = [];
  const sLen: number[] = [];
  let iovaLen = 0n; // size_t
  let prev = -1;
  entries.forEach((e, i) => {
    const sIovaOff = e.phys % GRANULE; // iova_offset(s->offset); sg_set_buf keeps offset < PAGE_SIZE
    const padLen = (segBoundaryMask - iovaLen + 1n) & U64 & segBoundaryMask;
    off.push(sIovaOff);
    len.push(e.length);
    physAligned.push(e.phys - sIovaOff);
    const sLength = iovaAlign(e.length + sIovaOff);
    sLen.push(sLength);
    if (padLen !== 0n && padLen < ((BigInt(sLength) - 1n) & U64)) {
      sLen[prev] = sLen[prev]! + Number(padLen);
      iovaLen += padLen;
    }
    iovaLen += BigInt(sLength);
    prev = i;
  });
  const total = Number(iovaLen);
  const iova = freshSacIova(total / GRANULE);

  // __iommu_map_sg: runs of physically contiguous (aligned, padded) entries
  const runs: Array<{ iova: bigint; paddr: number; size: number }> = [];
  let mapped = 0;
  let runStart = 0;
  let runLen = 0;
  for (let i = 0; i < entries.length; i++) {
    if (runLen !== 0 && physAligned[i] !== runStart + runLen) {
      runs.push({ iova: iova + BigInt(mapped), paddr: runStart, size: runLen });
      mapped += runLen;
      runLen = 0;
    }
    if (runLen !== 0) runLen += sLen[i]!;
    else {
      runLen = sLen[i]!;
      runStart = physAligned[i]!;
    }
  }
  runs.push({ iova: iova + BigInt(mapped), paddr: runStart, size: runLen });

  // __finalise_sg: unsigned int cur_len, max_len, s_length, s_iova_off, s_iova_len
  const dma: Array<{ dma: bigint; len: number }> = entries.map(() => ({ dma: U64, len: 0 }));
  const maxLen = maxSegSize >>> 0;
  let cur = 0;
  let curLen = 0;
  let count = 0;
  let dmaAddr = iova;
  for (let i = 0; i < entries.length; i++) {
    const sIovaOff = off[i]! >>> 0;
    const sLength = len[i]! >>> 0;
    const sIovaLen = sLen[i]! >>> 0;
    dma[i] = { dma: U64, len: 0 };
    if (curLen !== 0 && sIovaOff === 0 && (dmaAddr & segBoundaryMask) !== 0n && ((maxLen - curLen) >>> 0) >= sLength) {
      curLen = (curLen + sLength) >>> 0;
    } else {
      if (i > 0) cur++;
      curLen = sLength;
      count++;
      dma[cur] = { dma: dmaAddr + BigInt(sIovaOff), len: 0 };
    }
    dma[cur]!.len = curLen;
    dmaAddr += BigInt(sIovaLen);
    if (((sLength + sIovaOff) >>> 0) < sIovaLen) curLen = 0;
  }

  // iommu_dma_unmap_sg: from the first entry's address to the end of the last non-empty one
  const start = dma[0]!.dma;
  let end = 0n;
  for (const d of dma) {
    if (d.len === 0) break;
    end = d.dma + BigInt(d.len);
  }
  const unmapOff = Number(start % 4096n);
  const unmap = { iova: start - BigInt(unmapOff), size: iovaAlign(Number(end - start) + unmapOff) };

  return { iova, iovaLen: total, count, dma, runs, unmap };
}
