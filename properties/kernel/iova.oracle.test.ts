/**
 * kernel/iova.ts held to the real kernels: the allocator sequence of the recorded strict/main run
 * (Linux 5.10.262 and 6.1.192 under QEMU 7.2 intel-iommu; fixture copy of shared/oracle), driven
 * at the allocator level. The driver below derives, per step, the page count and the limits each
 * DMA path passes to alloc_iova_fast / free_iova_fast -- nothing else of the DMA paths is
 * modelled -- and every IOVA the recording shows for steps 1..93 must come out exactly.
 *
 * 5.10 (legacy intel_dma_ops, kernel-semantics 10.3-10.9):
 *  - map_page: nrpages = aligned_nrpages(phys, size) = ((phys & 0xfff) + size + 0xfff) >> 12;
 *    intel_alloc_iova rounds it to a power of two; mask = min(mask, DOMAIN_MAX_ADDR(39) =
 *    2^39 - 4096); if mask > 32 bits: alloc_iova_fast(n, 0xfffff, flush = false) first; then
 *    alloc_iova_fast(n, mask >> 12, flush = true). dma = pfn << 12 | (phys & 0xfff).
 *  - map_sg: ONE allocation of the sum of aligned_nrpages(offset, length) over the entries, laid
 *    out back to back page by page; entry i at iova + (pages before it) << 12 + its offset.
 *  - unmap (strict): free_iova_fast(pfn, unrounded page count).
 *  - alloc_coherent: PAGE_ALIGN(size) through the same allocation with the coherent mask.
 * 6.1 (dma-iommu, kernel-semantics 9.3, 9.4):
 *  - map_page: iova_len = ALIGN((phys & 0xfff) + size, 4096) >> 12 (alloc_iova_fast rounds below
 *    32 pages); dma_limit = min(mask, aperture_end = 2^39 - 1); PCI and dma_limit > 32 bits: SAC
 *    attempt alloc_iova_fast(len, 0xfffff, false); then alloc_iova_fast(len, limit >> 12, true).
 *  - map_sg: one allocation of sum(ALIGN(off + length)) plus segment-boundary padding (9.4.5:
 *    pad_len = (mask - iova_len + 1) & mask; pad the previous entry when pad_len != 0 and
 *    pad_len < s_length - 1); the first segment is at iova + its offset.
 *  - unmap / unmap_sg / free (strict): free_iova_fast(pfn, size >> 12) with size the
 *    granule-aligned length unmapped -- for an sg list the whole laid-out length.
 *  - alloc_coherent (iommu_dma_alloc_remap): iova_align(size) >> 12 pages, coherent mask.
 * Both: start pfn 1, one CPU, the scenario's reserved range (IOAPIC 0xfee00-0xfeeff).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { IovaDomain } from '../../kernel/iova.js';
import type { Release } from '../../kernel/release.js';

interface SgIn {
  phys: string;
  length: number;
}

type Step =
  | { op: 'set_dma_mask'; bits: number; which: string }
  | { op: 'set_max_seg_size'; size: number }
  | { op: 'set_seg_boundary'; mask: string }
  | { op: 'map_page'; phys: string; size: number; as: string }
  | { op: 'map_sg'; sg: SgIn[]; as: string }
  | { op: 'unmap'; map: string }
  | { op: 'alloc_coherent'; size: number; as: string }
  | { op: 'free_coherent'; map: string };

interface Expect {
  step: number;
  ok?: boolean;
  dma?: string;
  count?: number;
  segments?: Array<{ dma: string; len: number }>;
}

interface OracleFile {
  scenario: {
    devices: Array<{ pci: boolean; dmaMask: number; coherentMask: number; segBoundaryMask: string }>;
    reserved: Array<{ start: string; end: string }>;
    steps: Step[];
  };
  expect: Record<'legacy-intel' | 'dma-iommu', Expect[]>;
}

const fixture = new URL('../fixtures/oracle/strict-main.json', import.meta.url);
const oracle = JSON.parse(readFileSync(fixture, 'utf8')) as OracleFile;

const num = (h: string): number => Number(BigInt(h));
const PAGE = 4096;
const alignUp = (x: number): number => Math.ceil(x / PAGE) * PAGE;
const pow2Ceil = (n: number): number => {
  let p = 1;
  while (p < n) p *= 2;
  return p;
};
const bitMask = (bits: number): bigint => (bits >= 64 ? 2n ** 64n - 1n : (1n << BigInt(bits)) - 1n);

interface Mapping {
  pfn: number;
  /** the page count the unmap passes to free_iova_fast */
  freePages: number;
}

interface Outcome {
  step: number;
  dma?: number;
  /** map_sg: every segment address this driver can derive (legacy: all; 6.1: the first) */
  segDma?: number[];
}

/** Replay the scenario's allocator calls for one path. */
function replay(release: Release): Outcome[] {
  const dev = oracle.scenario.devices[0]!;
  const d = new IovaDomain(release, PAGE, 1, 1);
  for (const r of oracle.scenario.reserved) d.reserveIova(num(r.start) / PAGE, Math.floor(num(r.end) / PAGE));
  let dmaMask = bitMask(dev.dmaMask);
  let coherentMask = bitMask(dev.coherentMask);
  let segBoundary = BigInt(dev.segBoundaryMask);
  const maps = new Map<string, Mapping>();
  const out: Outcome[] = [];

  const alloc = (pages: number, mask: bigint): number => {
    if (release === '5.10') {
      // intel_alloc_iova
      const m = mask < 0x7f_ffff_f000n ? mask : 0x7f_ffff_f000n;
      const n = pow2Ceil(pages);
      if (m > 0xffff_ffffn) {
        const p = d.allocIovaFast(0, n, 0xfffff, false);
        if (p !== 0) return p;
      }
      return d.allocIovaFast(0, n, Number(m >> 12n), true);
    }
    // iommu_dma_alloc_iova: bus_dma_limit 0, aperture forced
    const limit = mask < 0x7f_ffff_ffffn ? mask : 0x7f_ffff_ffffn;
    if (limit > 0xffff_ffffn && dev.pci) {
      const p = d.allocIovaFast(0, pages, 0xfffff, false);
      if (p !== 0) return p;
    }
    return d.allocIovaFast(0, pages, Number(limit >> 12n), true);
  };

  oracle.scenario.steps.forEach((s, step) => {
    switch (s.op) {
      case 'set_dma_mask':
        if (s.which === 'both' || s.which === 'dma') dmaMask = bitMask(s.bits);
        if (s.which === 'both' || s.which === 'coherent') coherentMask = bitMask(s.bits);
        break;
      case 'set_max_seg_size':
        break; // changes the sg output, not the allocation
      case 'set_seg_boundary':
        segBoundary = BigInt(s.mask);
        break;
      case 'map_page': {
        const phys = num(s.phys);
        const off = phys % PAGE;
        const pages = alignUp(off + s.size) / PAGE; // aligned_nrpages == iova_align(off + size) >> 12
        const pfn = alloc(pages, dmaMask);
        expect(pfn, `step ${step}: allocation failed`).not.toBe(0);
        maps.set(s.as, { pfn, freePages: pages });
        out.push({ step, dma: pfn * PAGE + off });
        break;
      }
      case 'map_sg': {
        const ents = s.sg.map((e) => ({ off: num(e.phys) % PAGE, len: e.length }));
        let pfn: number;
        let pages: number;
        const segDma: number[] = [];
        if (release === '5.10') {
          const per = ents.map((e) => alignUp(e.off + e.len) / PAGE);
          pages = per.reduce((a, b) => a + b, 0);
          pfn = alloc(pages, dmaMask);
          let at = pfn;
          ents.forEach((e, i) => {
            segDma.push(at * PAGE + e.off);
            at += per[i]!;
          });
        } else {
          // iommu_dma_map_sg layout pass, in unsigned long arithmetic
          const U64 = 2n ** 64n;
          let iovaLen = 0n;
          for (const e of ents) {
            const sLength = BigInt(alignUp(e.off + e.len));
            const padLen = (((segBoundary - iovaLen + 1n) % U64) + U64) % U64 & segBoundary;
            const sLenMinus1 = (sLength - 1n + U64) % U64;
            if (padLen !== 0n && padLen < sLenMinus1) iovaLen += padLen;
            iovaLen += sLength;
          }
          pages = Number(iovaLen) / PAGE;
          pfn = alloc(pages, dmaMask);
          segDma.push(pfn * PAGE + ents[0]!.off);
        }
        expect(pfn, `step ${step}: allocation failed`).not.toBe(0);
        // unmap_sg frees what was laid out: 5.10 sums aligned_nrpages over the entries, 6.1
        // unmaps ALIGN(end of last segment - first dma + offset), i.e. the whole layout
        maps.set(s.as, { pfn, freePages: pages });
        out.push({ step, segDma });
        break;
      }
      case 'unmap':
      case 'free_coherent': {
        const m = maps.get(s.map)!;
        maps.delete(s.map);
        d.freeIovaFast(0, m.pfn, m.freePages);
        out.push({ step });
        break;
      }
      case 'alloc_coherent': {
        const pages = alignUp(s.size) / PAGE;
        const pfn = alloc(pages, coherentMask);
        expect(pfn, `step ${step}: allocation failed`).not.toBe(0);
        maps.set(s.as, { pfn, freePages: pages });
        out.push({ step, dma: pfn * PAGE });
        break;
      }
    }
  });
  // everything was unmapped or freed: only parked pfns remain allocated in the tree
  expect(d.inUseRanges()).toEqual([]);
  return out;
}

const PATHS: Array<[Release, 'legacy-intel' | 'dma-iommu']> = [
  ['5.10', 'legacy-intel'],
  ['6.1', 'dma-iommu'],
];

describe.each(PATHS)('strict/main allocator replay, %s (%s)', (release, path) => {
  const got = replay(release);
  const byStep = new Map(got.map((o) => [o.step, o]));
  const expects = oracle.expect[path].filter((e) => e.step >= 1 && e.step <= 93);

  it('the fixture is the recorded run: 94 steps, expectations for both paths', () => {
    expect(oracle.scenario.steps.length).toBe(94);
    expect(expects.filter((e) => e.dma !== undefined).length).toBe(25);
    expect(expects.filter((e) => e.segments !== undefined).length).toBe(16);
  });

  it('every map_page / alloc_coherent IOVA equals the recording', () => {
    const want = expects.filter((e) => e.dma !== undefined).map((e) => ({ step: e.step, dma: num(e.dma!) }));
    const have = want.map((w) => ({ step: w.step, dma: byStep.get(w.step)?.dma }));
    expect(have).toEqual(want);
  });

  it('every map_sg first segment equals the recording (5.10: every segment)', () => {
    const want = expects
      .filter((e) => e.segments !== undefined)
      .map((e) => ({ step: e.step, segs: release === '5.10' ? e.segments!.map((g) => num(g.dma)) : [num(e.segments![0]!.dma)] }));
    const have = want.map((w) => ({ step: w.step, segs: byStep.get(w.step)?.segDma }));
    expect(have).toEqual(want);
  });

  it('the page part of every recorded IOVA, listed (steps 1..93)', () => {
    const pfns = expects
      .map((e) => (e.dma !== undefined ? num(e.dma) : e.segments !== undefined ? num(e.segments[0]!.dma) : undefined))
      .filter((x): x is number => x !== undefined)
      .map((x) => Math.floor(x / PAGE));
    // the sequence itself, literally, so a change to the fixture cannot go unnoticed
    expect(pfns.map((p) => p.toString(16))).toEqual([
      'fffff', 'ffffe', 'ffffd', 'ffffa', 'ffff4', 'fffe0', 'fffc0', 'fffbf', 'fffbc', 'fffba',
      'fffff', 'ffffe', 'ffffd', 'fffb9', 'fffb9', 'fffb0',
      'ffff4', 'fffba', 'fffb0', 'fffac', 'fffbc', 'fffa8', 'fffa4', 'fffc0', 'fff80', 'fffb9',
      'fffa4', 'fffb0', 'fff78', 'fffa8', 'fff70',
      'fffb9', 'fffa8', 'fffa4', '3ffff', 'fffb9', 'ffffd', 'ffffe',
      'ffffe', 'fff70', 'fffe0',
    ]);
    const mine = got
      .map((o) => o.dma ?? o.segDma?.[0])
      .filter((x): x is number => x !== undefined)
      .map((x) => Math.floor(x / PAGE).toString(16));
    expect(mine).toEqual(pfns.map((p) => p.toString(16)));
  });
});
