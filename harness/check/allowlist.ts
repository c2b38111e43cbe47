/**
 * Known, intended divergences between the two paths. Each entry has an id, a predicate that
 * recognises exactly that divergence, the kernel reference and why it is acceptable. Anything
 * the checker reports that no entry recognises fails the migration gate.
 */
import type { Divergence } from './checker.js';
import type { Mapping } from '../run/path-runner.js';
import { must } from '../../kernel/assert.js';
import { pageAlignDown, pageAlignUp } from '../../kernel/bits.js';

/** What a predicate may look at besides the divergence: each path's mappings by name. */
export interface AllowContext {
  legacy: ReadonlyMap<string, Mapping>;
  generic: ReadonlyMap<string, Mapping>;
}

export interface AllowEntry {
  id: string;
  title: string;
  reference: string;
  reason: string;
  matches(d: Divergence, ctx: AllowContext): boolean;
  /**
   * For entries about pages the generic path reaches in addition: the pages the entry accounts
   * for on a device. A reachable divergence whose extra pages several such entries account for
   * together is recognised by all of them.
   */
  extraPages?(ctx: AllowContext, device: string): Set<number>;
}

/**
 * iommu_dma_map_sg's layout pass, computed here from the caller's entries and the limits in
 * force at map time, independently of the model (kernel-semantics 3.5 step 2, 9.4.5, 7.15b): the
 * IOVA length of the list (granule-aligned entries plus boundary pads) and the physical pages the
 * pads expose -- a pad extends the previous entry's physical range up to the next segment
 * boundary, so the pages after that entry become reachable.
 */
export function sgLayout(entries: ReadonlyArray<{ phys: number; length: number }>, mask: bigint): { pads: Set<number>; iovaLen: bigint } {
  const pads = new Set<number>();
  let iovaLen = 0n;
  let prevEnd = 0;
  entries.forEach((e, i) => {
    const off = e.phys % 4096;
    const sLen = BigInt(Math.ceil((e.length + off) / 4096) * 4096);
    const pad = BigInt.asUintN(64, mask - iovaLen + 1n) & mask;
    if (i > 0 && pad !== 0n && pad < BigInt.asUintN(64, sLen - 1n)) {
      for (let p = 0; p < Number(pad) / 4096; p++) pads.add(prevEnd / 4096 + p);
      iovaLen += pad;
    }
    iovaLen += sLen;
    prevEnd = e.phys - off + Number(sLen);
  });
  return { pads, iovaLen };
}

/** The physical pages the boundary pads of a trusted list expose (sgLayout). */
export function padPages(entries: ReadonlyArray<{ phys: number; length: number }>, mask: bigint): Set<number> {
  return sgLayout(entries, mask).pads;
}

/** D3's pages: the pads of the device's live trusted sg lists on the generic path. */
function livePadPages(ctx: AllowContext, device: string): Set<number> {
  const pads = new Set<number>();
  for (const m of ctx.generic.values()) {
    if (!m.live || m.kind !== 'sg' || m.dev.untrusted || m.dev.name !== device) continue;
    for (const p of padPages(m.entries ?? [], m.segBoundaryMask ?? 0xffff_ffffn)) pads.add(p);
  }
  return pads;
}

/** D4's pages: those of the device's live mappings that only the generic path made. */
function oneSidedPages(ctx: AllowContext, device: string): Set<number> {
  const pages = new Set<number>();
  for (const [name, g] of ctx.generic) if (g.live && g.dev.name === device && onlyOnGeneric(ctx, name)) for (const p of mappingPages(g)) pages.add(p);
  return pages;
}

export const ALLOWLIST: readonly AllowEntry[] = [
  {
    id: 'D1',
    title: 'map_sg merges segments on the generic path',
    reference: 'dma-iommu.c __finalise_sg (809eac54cdd6); kernel-semantics 3.5, 9.4.5',
    reason:
      'dma-iommu returns fewer, merged segments with trailing entries at DMA_MAPPING_ERROR/0; the DMA API allows any count <= nents and a correct driver uses only the first count (the legacy driver returned nelems).',
    matches: (d) => {
      if (d.kind !== 'sg-count') return false;
      const l = d.legacy as { count?: number };
      const g = d.generic as { count?: number };
      return l.count !== undefined && g.count !== undefined && g.count > 0 && g.count < l.count;
    },
  },
  {
    id: 'D2',
    title: '__finalise_sg merges past max_seg_size once a first entry exceeds it',
    reference: 'dma-iommu.c __finalise_sg (unsigned int max_len - cur_len); kernel-semantics 9.0 #5, 9.4.5',
    reason:
      'the kernel computes max_len - cur_len in unsigned 32-bit arithmetic; an output segment whose first entry is already longer than max_seg_size keeps absorbing entries. It is what 6.1 does (the real run merged 0x2000 + 0x3000 under a 4 KiB limit), and a driver that sets max_seg_size never passes such an entry.',
    matches: (d) => d.kind === 'sg-limits' && d.path === 'dma-iommu' && d.rule === 'max-seg' && d.firstEntryExceeds === true,
  },
  {
    id: 'D3',
    title: 'segment-boundary pad maps the page after the previous entry (trusted devices)',
    reference: 'dma-iommu.c iommu_dma_map_sg pad_len / iommu.c __iommu_map_sg; kernel-semantics 7.15b',
    reason:
      'to keep segments off the device boundary dma-iommu pads the IOVA range and maps the pad to the physical memory after the previous entry. Only trusted devices get pads (untrusted lists are bounced entry by entry), so a device the kernel already trusts with DMA can reach those pages.',
    extraPages: livePadPages,
    matches(d, ctx) {
      if (d.kind === 'trace') return padTraceOnly(d, ctx);
      const more = widerOnGeneric(d);
      const pads = livePadPages(ctx, d.device ?? '');
      return more !== undefined && more.length > 0 && more.every((p) => pads.has(p));
    },
  },
  {
    id: 'D4',
    title: 'the legacy path runs out of IOVA space where the generic path does not',
    reference:
      'intel/iommu.c intel_alloc_iova rounds every request up to a power of two, dma-iommu only below 32 granules (alloc_iova_fast); iova.c retry from the last node (4e89dce72521, v5.11) and the depot emptied on failure (6fa3525b455a, v5.11); kernel-semantics 1.2, 2.2, 7.13, 9.1.4',
    reason:
      'a map that fails on 5.10 (DMA_MAPPING_ERROR, "Allocating N-page iova failed") succeeds on 6.1, which wastes less IOVA space and retries above the cached node; the migration turns a failure a driver must already handle into a success. Everything that follows from that one mapping existing only on the generic path (its unmap, its accesses, its pages being reachable) is the same difference -- including a later 6.1 failure while such a mapping holds IOVA space the legacy path never handed out, provided the exhaustion check found no free range 6.1 should have used.',
    extraPages: oneSidedPages,
    matches(d, ctx) {
      if (d.kind === 'reachable') {
        const more = widerOnGeneric(d);
        const pages = oneSidedPages(ctx, d.device ?? '');
        if (more !== undefined && more.length > 0 && more.every((p) => pages.has(p))) return true;
        return reachableFromOneSided(d, ctx);
      }
      // a path whose own events do not match its own tables is never excused
      if (d.kind === 'trace' && d.path !== undefined) return false;
      return d.kind !== 'leak' && d.kind !== 'exhaustion' && (onlyOnGeneric(ctx, d.map) || onlyOnLegacy(ctx, d.map));
    },
  },
  {
    id: 'D5',
    title: "a probe past a buffer reaches the device's next mapping on one path and unused IOVA space on the other",
    reference:
      'IOVA placement: intel/iommu.c intel_alloc_iova rounds to a power of two (the rounded tail stays unmapped) and tries below 4 GiB first for every device; dma-iommu rounds only below 32 granules (alloc_iova_fast) and tries below 4 GiB first only for PCI devices (iommu_dma_alloc_iova); kernel-semantics 1.4, 7.6, 9.1.4, 9.3',
    reason:
      'IOVA placement is not part of the DMA API. An access beyond a buffer that one path refuses lands, on the other, inside another live mapping of the same device -- memory that device is already allowed to reach -- so no isolation is lost.',
    matches: (d, ctx) => {
      if (d.kind !== 'exposure' || d.probe === undefined) return false;
      const l = d.legacy as { ok: boolean; fault?: unknown };
      const g = d.generic as { ok: boolean; fault?: unknown };
      if (l.ok === g.ok) return false;
      const [side, pieces, probed] = l.ok ? ['legacy', d.probe.legacy, ctx.legacy.get(d.map ?? '')] : ['generic', d.probe.generic, ctx.generic.get(d.map ?? '')];
      const faulted = (l.ok ? g : l).fault !== undefined;
      if (!faulted || probed === undefined || !probed.live) return false;
      const table = side === 'legacy' ? ctx.legacy : ctx.generic;
      return pieces.every((p) => insideLiveMapping(table, probed, p.iova, p.len));
    },
  },
  {
    id: 'D6',
    title: "a probe past a buffer reads, on each path, another live mapping of the same device, not the same one",
    reference:
      'IOVA placement as D5: intel_alloc_iova tries below 4 GiB first for every device and rounds to a power of two; iommu_dma_alloc_iova tries below 4 GiB first only when dev_is_pci(dev); __alloc_and_insert_iova_range walks down from cached32_node/cached_node; kernel-semantics 2.2, 9.3, 9.1.2, 10.2',
    reason:
      'the bytes outside the buffer come, on each path, from a page the device already reaches through another of its own live mappings (the translation it used is that mapping\'s PTE); the bytes in the probed mapping\'s own pages are equal. Which neighbour sits next to a buffer in IOVA space is placement, which the DMA API leaves undefined.',
    matches: (d, ctx) => {
      if (d.kind !== 'exposure' || d.probePages === undefined || d.map === undefined) return false;
      const l = d.legacy as { ok: boolean; data?: string };
      const g = d.generic as { ok: boolean; data?: string };
      if (!l.ok || !g.ok || l.data === undefined || g.data === undefined) return false;
      const own = new Set<number>();
      for (const [table, pages] of [[ctx.legacy, d.probePages.legacy], [ctx.generic, d.probePages.generic]] as const) {
        const probed = table.get(d.map);
        if (probed === undefined) return false;
        const mine = probed.live ? pageRanges(probed) : [];
        for (const p of pages) {
          if (mine.some(([a, b]) => p.iova >= a && p.iova < b)) {
            for (let k = p.at; k < p.at + p.n; k++) own.add(k);
            continue;
          }
          // foreign: inside another live mapping of the device, reached through its present PTE
          if (p.reached < 0 || p.reached !== p.mapped) return false;
          const other = [...table.values()].some((m) => m !== probed && m.live && m.dev === probed.dev && pageRanges(m).some(([a, b]) => p.iova >= a && p.iova < b));
          if (!other) return false;
        }
      }
      for (const k of own) if (l.data.slice(2 * k, 2 * k + 2) !== g.data.slice(2 * k, 2 * k + 2)) return false;
      return true;
    },
  },
];

/** The page-rounded IOVA ranges of a mapping: its handle, or the first count segments of a list. */
function pageRanges(m: Mapping): Array<[bigint, bigint]> {
  const span = (a: bigint, len: number): [bigint, bigint] => [pageAlignDown(a), pageAlignUp(a + BigInt(len))];
  if (m.kind === 'sg') return (m.sgt?.sgl.slice(0, m.count) ?? []).map((s) => span(s.dmaAddress, s.dmaLength));
  return [span(m.dma, m.size)];
}

/**
 * A trace-accounting difference (not a path's own inconsistency) that is only the generic path's
 * map and unmap events also naming the pad pages of the trusted list the step maps or unmaps.
 */
function padTraceOnly(d: Divergence, ctx: AllowContext): boolean {
  if (d.path !== undefined || (d.onlyLegacy?.length ?? 0) > 0) return false;
  const m = ctx.generic.get(d.map ?? '');
  if (m === undefined || m.kind !== 'sg' || m.dev.untrusted) return false;
  const pads = padPages(m.entries ?? [], m.segBoundaryMask ?? 0xffff_ffffn);
  const only = d.onlyGeneric ?? [];
  return (
    only.length > 0 &&
    only.every((x) => {
      const t = /^(?:map|unmap) \S+ p:(0x[0-9a-f]+)$/.exec(x);
      return t !== null && pads.has(Number(t[1]) / 4096);
    })
  );
}

/** A mapping whose map failed on the legacy path for want of IOVA space and succeeded on the generic one. */
function onlyOnGeneric(ctx: AllowContext, name: string | undefined): boolean {
  if (name === undefined) return false;
  const l = ctx.legacy.get(name);
  const g = ctx.generic.get(name);
  return l !== undefined && g !== undefined && l.iovaFailed === true && g.ok;
}

/**
 * A mapping that succeeded on the legacy path and failed on the generic one for want of IOVA
 * space while the device held a mapping only the generic path has (D4's state), 6.1's failure
 * being one the exhaustion check found legitimate (no aligned free range).
 */
function onlyOnLegacy(ctx: AllowContext, name: string | undefined): boolean {
  if (name === undefined) return false;
  const l = ctx.legacy.get(name);
  const g = ctx.generic.get(name);
  if (l === undefined || g === undefined || !l.ok || g.ok || g.iovaFailed !== true || g.noFreeRange !== true) return false;
  return [...ctx.generic].some(([n, m]) => n !== name && m.live && m.dev === g.dev && onlyOnGeneric(ctx, n));
}

/** Whether every page [iova, iova + len) touches lies in a live mapping of the probed device. */
function insideLiveMapping(table: ReadonlyMap<string, Mapping>, probed: Mapping, iova: bigint, len: number): boolean {
  const ranges: Array<[bigint, bigint]> = [];
  for (const m of table.values()) {
    if (!m.live || m.dev !== probed.dev) continue;
    if (m.kind === 'sg') {
      for (const s of m.sgt?.sgl.slice(0, m.count) ?? []) ranges.push([pageAlignDown(s.dmaAddress), pageAlignUp(s.dmaAddress + BigInt(s.dmaLength))]);
    } else {
      ranges.push([pageAlignDown(m.dma), pageAlignUp(m.dma + BigInt(m.size))]);
    }
  }
  for (let page = pageAlignDown(iova); page < iova + BigInt(len); page += 0x1000n) {
    if (!ranges.some(([a, b]) => page >= a && page < b)) return false;
  }
  return true;
}

/** The buffer pages a mapping covers (CPU side). */
function mappingPages(m: Mapping): number[] {
  const out: number[] = [];
  const add = (phys: number, len: number): void => {
    for (let p = Math.floor(phys / 4096); p <= Math.floor((phys + len - 1) / 4096); p++) out.push(p);
  };
  if (m.kind === 'single') add(m.phys, m.size);
  else if (m.kind === 'sg') for (const e of m.entries ?? []) add(e.phys, e.length);
  else for (const p of m.coherent?.pfns ?? []) out.push(p);
  return out;
}

/**
 * A reachable divergence made only of the pages of mappings that exist on one side alone (D4's
 * state, either way round): buffer pages by address, pooled pages (coherent pages, bounce slots)
 * by count, since pooled pages compare by count.
 */
function reachableFromOneSided(d: Divergence, ctx: AllowContext): boolean {
  if (d.kind !== 'reachable') return false;
  const side = (table: ReadonlyMap<string, Mapping>, only: (n: string) => boolean, shown: readonly string[]): boolean => {
    const pages = new Set<number>();
    const budget = new Map<string, number>();
    for (const [name, m] of table) {
      if (!m.live || m.dev.name !== d.device || !only(name)) continue;
      for (const p of mappingPages(m)) pages.add(p);
      if (m.kind === 'coherent') budget.set('coherent', (budget.get('coherent') ?? 0) + (m.coherent?.pfns.length ?? 0));
      else {
        const bufs = m.kind === 'single' ? [{ phys: m.phys, length: m.size }] : (m.entries ?? []);
        // a bounced buffer's slot pages: its pages, one more if it straddles a page
        for (const b of bufs) budget.set('swiotlb', (budget.get('swiotlb') ?? 0) + Math.ceil(b.length / 4096) + 1);
      }
    }
    for (const x of shown) {
      const page = /^0x([0-9a-f]+):[rw]+$/.exec(x);
      if (page !== null) {
        if (!pages.has(Number.parseInt(page[1], 16) / 4096)) return false;
        continue;
      }
      const pooled = /^(\d+) (swiotlb|coherent):\d page\(s\)$/.exec(x);
      if (pooled === null) return false;
      const left = (budget.get(pooled[2]) ?? 0) - Number(pooled[1]);
      if (left < 0) return false;
      budget.set(pooled[2], left);
    }
    return true;
  };
  // a page both reach with different permissions shows on both sides: only the side with more
  // permission needs a one-sided mapping to explain it
  const perms = (xs: readonly string[]): Map<string, string> => {
    const m = new Map<string, string>();
    for (const x of xs) {
      const t = /^(0x[0-9a-f]+):([rw]+)$/.exec(x);
      if (t !== null) m.set(t[1], t[2]);
    }
    return m;
  };
  const lp = perms(d.onlyLegacy ?? []);
  const gp = perms(d.onlyGeneric ?? []);
  const keep = (x: string, mine: Map<string, string>, theirs: Map<string, string>): boolean => {
    const pfn = /^(0x[0-9a-f]+):/.exec(x)?.[1];
    if (pfn === undefined) return true;
    const other = theirs.get(pfn);
    return other === undefined || must(mine.get(pfn), 'the permission of a page its own list names').length > other.length;
  };
  const l = (d.onlyLegacy ?? []).filter((x) => keep(x, lp, gp));
  const g = (d.onlyGeneric ?? []).filter((x) => keep(x, gp, lp));
  if (l.length + g.length === 0) return false;
  return side(ctx.legacy, (n) => onlyOnLegacy(ctx, n), l) && side(ctx.generic, (n) => onlyOnGeneric(ctx, n), g);
}

/**
 * For a reachable divergence where the generic path reaches only more (new buffer pages, or
 * more permission on pages both reach) and nothing less: those pages. Otherwise undefined.
 */
function widerOnGeneric(d: Divergence): number[] | undefined {
  if (d.kind !== 'reachable' || d.extraGenericPfns === undefined) return undefined;
  if ((d.narrowerGeneric ?? d.onlyLegacy?.length ?? 0) > 0) return undefined;
  const more = [...d.extraGenericPfns, ...(d.widenedGenericPfns ?? [])];
  // pooled (swiotlb, coherent) differences are not pages a predicate can attribute
  if ((d.onlyGeneric?.length ?? 0) !== more.length) return undefined;
  return more;
}

/**
 * The id of the first entry that recognises d, if any; for extra reachable pages that no single
 * entry explains but several do together, their ids joined ("D3+D4").
 */
export function allowlisted(d: Divergence, ctx: AllowContext): string | undefined {
  const one = ALLOWLIST.find((e) => e.matches(d, ctx))?.id;
  if (one !== undefined || d.kind !== 'reachable') return one;
  const more = widerOnGeneric(d);
  if (more === undefined || more.length === 0) return undefined;
  const ids: string[] = [];
  const covered = new Set<number>();
  for (const e of ALLOWLIST) {
    if (e.extraPages === undefined) continue;
    const pages = e.extraPages(ctx, d.device ?? '');
    if (more.some((p) => pages.has(p) && !covered.has(p))) ids.push(e.id);
    for (const p of pages) covered.add(p);
  }
  return more.every((p) => covered.has(p)) ? ids.join('+') : undefined;
}
