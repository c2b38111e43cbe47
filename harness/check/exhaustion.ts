/**
 * What 6.1's allocator promises when IOVA space runs short, checked from outside the model.
 *
 * Comparing the paths cannot see a 6.1 allocator that fails like 5.10 does (DESIGN.md, the
 * paragraph on what comparison cannot see). But 6.1 promises more than 5.10: on a failure
 * alloc_iova_fast empties every CPU's magazines and the depot into the tree (6fa3525b455a) and
 * searches again, and each search walks down from the cached node and then retries once from the
 * top (4e89dce72521 with dcdb3ba7e2a8); sizes below 32 granules are rounded up to a power of two,
 * larger ones are not, and every range is aligned to the next power of two of its size
 * (kernel-semantics 9.1.2, 9.1.4, 9.3). So in a strict domain (nothing parked in a flush queue)
 * a 6.1 allocation fails only if no naturally aligned free range of that size exists below the
 * limit, counting as occupied just the reserved ranges and the device's live mappings. The check
 * recomputes every live mapping's IOVA range from the handles the path returned and the sizes the
 * scenario asked for, with those rules, and reports a failure when a fit existed.
 */
import { dmaBitMask, type Device } from '../../kernel/device.js';
import { alignedNrpages } from '../../intel-common/intel-pgtable.js';
import { IOVA_RANGE_CACHE_MAX_SIZE } from '../../kernel/iova-rcache.js';
import { roundupPowOfTwo } from '../../kernel/release.js';
import { sgLayout } from './allowlist.js';
import { needsBounce } from '../run/devices.js';
import type { Divergence } from './checker.js';
import type { Mapping, PathRunner } from '../run/path-runner.js';
import type { Scenario, Step } from '../workload/scenario.js';
import { iovaOffset, iovaPfn, pfnAddr } from '../../kernel/bits.js';

/** ranges of up to this many pages are rounded by alloc_iova_fast and parked in the rcaches */
const RCACHE_MAX_PAGES = 2 ** (IOVA_RANGE_CACHE_MAX_SIZE - 1);

/** alloc_iova_fast (6.1): below 32 granules round up to a power of two, else keep the size */
function roundedPages(pages: number): number {
  return pages < RCACHE_MAX_PAGES ? roundupPowOfTwo(Math.max(pages, 1)) : pages;
}

function untrusted(dev: Device): boolean {
  return dev.pci && dev.untrusted;
}

/** The IOVA ranges [lo, hi] (pfns) a live 6.1 mapping holds, from its handles and sizes. */
function heldRanges(m: Mapping): Array<[number, number]> {
  const hold = (dma: bigint, pages: number): [number, number] => {
    const lo = iovaPfn(dma);
    return [lo, lo + roundedPages(pages) - 1];
  };
  if (m.kind === 'single' || m.kind === 'coherent') return [hold(m.dma, alignedNrpages(iovaOffset(m.dma), m.size))];
  const segs = m.sgt?.sgl ?? [];
  if (untrusted(m.dev)) return (m.entries ?? []).map((e, k) => hold(segs[k]!.dmaAddress, alignedNrpages(iovaOffset(segs[k]!.dmaAddress), e.length)));
  const { iovaLen } = sgLayout(m.entries ?? [], m.segBoundaryMask ?? 0xffff_ffffn);
  return [hold(segs[0]!.dmaAddress, Number(iovaLen) / 4096)];
}

/** Whether any range heldRanges(m) gives starts at or above 4 GiB (without building them). */
function heldAbove4G(m: Mapping): boolean {
  if (m.kind === 'single' || m.kind === 'coherent') return m.dma >= FOUR_GIB;
  const segs = m.sgt?.sgl ?? [];
  if (!untrusted(m.dev)) return segs[0]!.dmaAddress >= FOUR_GIB;
  const n = m.entries?.length ?? 0;
  for (let k = 0; k < n; k++) if (segs[k]!.dmaAddress >= FOUR_GIB) return true;
  return false;
}

/** The DMA mask a step's request is made under, or undefined when it makes none to judge. */
function requestMask(step: Step, dev: Device): bigint | undefined {
  switch (step.op) {
    case 'map_page':
      return dev.dmaMask;
    case 'alloc_coherent':
      return dev.coherentDmaMask;
    case 'map_sg':
      // an untrusted list maps entry by entry and unwinds on failure: not one request
      return untrusted(dev) ? undefined : dev.dmaMask;
    default:
      return undefined;
  }
}

/** The request a step made: pages (before rounding) and the DMA mask, or undefined to skip. */
function requestOf(step: Step, dev: Device): { pages: number; mask: bigint } | undefined {
  const mask = requestMask(step, dev);
  if (mask === undefined) return undefined;
  switch (step.op) {
    case 'map_page': {
      const bounced = untrusted(dev) && needsBounce(step.phys, step.size);
      // a bounce slot starts on a page (no min_align_mask), so the mapping starts at offset 0
      return { pages: bounced ? Math.ceil(step.size / 4096) : alignedNrpages(step.phys, step.size), mask };
    }
    case 'alloc_coherent':
      return { pages: Math.ceil(step.size / 4096), mask };
    case 'map_sg':
      return { pages: Number(sgLayout(step.sg, dev.segBoundaryMask).iovaLen) / 4096, mask };
    default:
      return undefined;
  }
}

/** A naturally aligned free range of `size` pages in [1, limit], if any. */
function findFit(occupied: Array<[number, number]>, size: number, limit: number): number | undefined {
  const align = roundupPowOfTwo(size);
  const busy = [...occupied].sort((a, b) => a[0] - b[0]);
  let lo = 1;
  const tryGap = (hi: number): number | undefined => {
    const s = Math.ceil(lo / align) * align;
    return s + size - 1 <= hi ? s : undefined;
  };
  for (const [a, b] of busy) {
    if (a > limit) break;
    if (a > lo) {
      const s = tryGap(Math.min(a - 1, limit));
      if (s !== undefined) return s;
    }
    lo = Math.max(lo, b + 1);
  }
  return lo <= limit ? tryGap(limit) : undefined;
}

/** dma_32bit_pfn: the first pfn above 4 GiB */
const DMA_32BIT_PFN = 0x10_0000;
const FOUR_GIB = pfnAddr(DMA_32BIT_PFN);

/**
 * The exhaustion check over a run: a 6.1 IOVA failure although an aligned free range existed.
 *
 * One rule of 6.1 is stateful and is tracked here from what the path returned: every final
 * failure of __alloc_and_insert_iova_range sets max32_alloc_size to its size whatever the limit
 * was, and while it stands any request under a 32-bit limit of that size or more fails at once
 * (kernel-semantics 9.1.2 steps 2 and 6). Only freeing a range below 4 GiB from the tree resets
 * it. From outside, a reset is certain only when a range too large for the rcaches is unmapped
 * below 4 GiB, or when a request the rule would have refused succeeds; magazine spills may reset
 * it unseen, so the check stays silent while a floor stands (it never reports a legitimate
 * failure, at the price of not judging those).
 */
export class IovaFitWatch {
  /** per device: the size of 6.1's last failed request, while max32_alloc_size may still hold it */
  private readonly max32 = new Map<Device, number>();

  check(i: number, step: Step, s: Scenario, gr: PathRunner): Divergence[] {
    const name = 'as' in step ? step.as : undefined;
    const m = name === undefined ? undefined : gr.mappings.get(name);
    if (step.op === 'unmap' || step.op === 'free_coherent') {
      this.freed(gr.mappings.get(step.map));
      return [];
    }
    if (m === undefined || name === undefined) return [];
    const dev = m.dev;
    if (m.ok) {
      this.succeeded(step, m, s);
      return [];
    }
    if (m.iovaFailed !== true) return [];
    const req = requestOf(step, dev);
    const size = req === undefined ? 1 : roundedPages(req.pages);
    const floor = this.max32.get(dev);
    // a failed search leaves max32_alloc_size at this size; a fast fail leaves it as it was
    this.max32.set(dev, floor === undefined ? size : Math.min(floor, size));
    if (req === undefined) return [];
    // a lazy domain parks freed IOVAs in its flush queue, out of reach of the failure path
    const strict = s.platform.strict || s.platform.cachingMode || untrusted(dev);
    if (!strict) return [];
    // iommu_dma_alloc_iova: the limit is clamped to the forced aperture, 2^gaw - 1
    const aperture = dmaBitMask(s.platform.agaw);
    const limit = iovaPfn(req.mask < aperture ? req.mask : aperture);
    // the 32-bit fast fail (iova32_full) may have refused it without a search
    if (floor !== undefined && limit + 1 <= DMA_32BIT_PFN && size >= floor) return [];
    const occupied: Array<[number, number]> = s.reserved.map((r) => [iovaPfn(r.start), iovaPfn(r.end)]);
    for (const other of gr.mappings.values()) if (other !== m && other.live && other.dev === dev) occupied.push(...heldRanges(other));
    const fit = findFit(occupied, size, limit);
    if (fit === undefined) {
      m.noFreeRange = true;
      return [];
    }
    return [
      {
        step: i,
        kind: 'exhaustion',
        map: name,
        path: 'dma-iommu',
        detail: `6.1 failed to allocate ${size} IOVA page(s) (aligned to ${roundupPowOfTwo(size)}) below 0x${((limit + 1) * 4096).toString(16)} for ${name}, although 0x${(fit * 4096).toString(16)}.. was free once the caches are emptied`,
        legacy: 'not checked (5.10 makes no such promise)',
        generic: { pages: size, limit: `0x${limit.toString(16)}`, freeAt: `0x${(fit * 4096).toString(16)}` },
      },
    ];
  }

  /** a success under a 32-bit limit the fast fail would have refused: max32 was reset before */
  private succeeded(step: Step, m: Mapping, s: Scenario): void {
    const dev = m.dev;
    const floor = this.max32.get(dev);
    // the request's mask alone first: most successes neither set nor clear the floor
    const mask = requestMask(step, dev);
    if (mask === undefined) return;
    const wide = mask > 0xffff_ffffn;
    // iommu_dma_alloc_iova tries below 4 GiB first for a PCI device; landing above means that
    // attempt failed, leaving its size in max32_alloc_size
    const sac = wide && dev.pci && !s.platform.forcedac;
    const above = sac && heldAbove4G(m);
    if (!above && (floor === undefined || (wide && !sac))) return;
    const req = requestOf(step, dev);
    if (req === undefined) return;
    const size = roundedPages(req.pages);
    if (above) this.max32.set(dev, size);
    else if (size >= floor!) this.max32.delete(dev);
  }

  /** __cached_rbnode_delete_update: a range freed to the tree below 4 GiB resets max32_alloc_size */
  private freed(m: Mapping | undefined): void {
    if (m === undefined || !m.ok || !this.max32.has(m.dev)) return;
    if (heldRanges(m).some(([lo, hi]) => lo < DMA_32BIT_PFN && hi - lo + 1 > RCACHE_MAX_PAGES)) this.max32.delete(m.dev);
  }
}

/** A held range whose rounded-up tail 5.10 would have kept: 33 pages or more, not a power of two. */
function hasRoundedTail(pages: number): boolean {
  return pages >= 33 && (pages & (pages - 1)) !== 0;
}

/**
 * Whether the mapping a step just made on 6.1 lies in the rounded-up tail of another live
 * mapping of 33 pages or more whose size is not a power of two: space 5.10's rounding would have
 * kept allocated (intel_alloc_iova's __roundup_pow_of_two) and 6.1 hands out (alloc_iova_fast
 * rounds only below 32 granules). The coverage branch that says the rounding difference was met.
 * The live mappings with such a tail are kept as they come and go, so a step costs the few of
 * them, not every live mapping.
 */
export class RoundedTailWatch {
  private readonly holders = new Set<Mapping>();

  check(step: Step, gr: PathRunner): boolean {
    for (const h of this.holders) if (!h.live) this.holders.delete(h);
    const name = 'as' in step ? step.as : undefined;
    const m = name === undefined ? undefined : gr.mappings.get(name);
    if (m === undefined || !m.ok) return false;
    const mine = heldRanges(m);
    let hit = false;
    for (const other of this.holders) {
      if (other === m || other.dev !== m.dev) continue;
      for (const [lo, hi] of heldRanges(other)) {
        const pages = hi - lo + 1;
        if (!hasRoundedTail(pages)) continue;
        const tailEnd = lo + roundupPowOfTwo(pages) - 1;
        if (mine.some(([a, b]) => a <= tailEnd && b > hi)) hit = true;
      }
    }
    if (m.live && mine.some(([lo, hi]) => hasRoundedTail(hi - lo + 1))) this.holders.add(m);
    return hit;
  }
}
