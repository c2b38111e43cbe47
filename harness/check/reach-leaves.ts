/**
 * The reach tracker's leaf shadow (reach-tracker.ts): the present leaves of each domain's page
 * table (base pfn -> phys, level, R/W), re-read only over the span of a page-table entry that was
 * written. The table page written tells which domain, level and IOVA range it maps; table pages
 * are learnt as the re-reads walk through them. Each leaf that changes is noted on the devices of
 * its domain: in leafChanges (for the trace audit) and in pending (to be re-probed).
 */
import type { Machine } from '../../platform/machine.js';
import { DMA_PTE_LARGE_PAGE, levelBase, lvlToNrPages, modPow2, pfnLevelOffset, VTD_PAGE_SIZE } from '../../vtd/regs.js';
import { entryPfn } from '../../vtd/entries.js';
import { regionOf } from './observe.js';
import { PageMap, type PfnList } from './page-map.js';
import type { DeviceReach } from './reach-probes.js';

/** A leaf as kept: phys pfn * 16 + level * 4 + R/W bits. */
const enc = (phys: number, level: number, perm: number): number => phys * 16 + level * 4 + perm;
export const leafPhys = (v: number): number => Math.floor(v / 16);
export const leafLevel = (v: number): number => modPow2(Math.floor(v / 4), 4);
export const leafPerm = (v: number): number => modPow2(v, 4);

/**
 * The base pfn of the leaf of `m` that covers pfn (a 4 KiB, 2 MiB or 1 GiB one), or -1; its kept
 * value is m.get(base).
 */
export function coveringLeafBase(m: PageMap, pfn: number): number {
  for (let level = 1; level <= 3; level++) {
    const base = levelBase(pfn, level);
    const v = m.get(base);
    if (v !== undefined && leafLevel(v) === level) return base;
  }
  return -1;
}

/** Where a page-table page sits: the domain (by its root page), its level, the first IOVA pfn it maps. */
export interface TableInfo {
  root: number;
  level: number;
  base: number;
}

export class LeafShadow {
  /** domain root page -> its present leaves (base pfn -> enc) */
  readonly leaves = new Map<number, PageMap>();
  /** page-table page -> where it sits (learnt by the re-reads) */
  readonly tables = new Map<number, TableInfo>();
  /** per domain root: the bases of leaves that map pool pages (swiotlb slots, coherent buffers) */
  readonly pooledLeaves = new Map<number, Set<number>>();
  /**
   * The last written page the tracker found to be neither a tracked table nor a context page:
   * kept here because learning a table page must forget it.
   */
  quietPage = -1;
  private readonly scratch = new Uint32Array(2);

  /** `devs` is the tracker's device list (shared, not copied): the owners of each domain. */
  constructor(
    private readonly memory: Machine['memory'],
    private readonly devs: readonly DeviceReach[],
  ) {}

  /** The present leaves of the domain rooted at `root`, read whole the first time it is seen. */
  domain(root: number, levels: number): PageMap {
    let m = this.leaves.get(root);
    if (m === undefined) {
      m = new PageMap();
      this.leaves.set(root, m);
      this.rereadLeaves(root, 0, lvlToNrPages(levels + 1));
    }
    return m;
  }

  /**
   * Add each IOVA pfn of a domain whose leaf maps a pool page (what they name can change without
   * a PTE write) to `into`.
   */
  addPooledLeafPages(root: number, into: PfnList): void {
    const bases = this.pooledLeaves.get(root);
    if (bases === undefined) return;
    const m = this.leaves.get(root);
    for (const base of bases) {
      const v = m?.get(base);
      if (v !== undefined) for (let i = 0; i < lvlToNrPages(leafLevel(v)); i++) into.add(base + i);
    }
  }

  /**
   * One last-level entry written (the common step): read it where it was written, instead of
   * walking down to it, and re-probe its one page.
   */
  leafWritten(root: number, pfn: number, addr: number): void {
    const m = this.leaves.get(root);
    if (m === undefined) return;
    const s = this.scratch;
    this.memory.readQword(addr, s);
    const before = m.get(pfn);
    const now = (s[0]! & 3) === 0 ? undefined : enc(entryPfn(s[0]!, s[1]!), 1, s[0]! & 3);
    if (before === now) return;
    if (now === undefined) m.delete(pfn);
    else m.set(pfn, now);
    const pooled = this.pooledLeaves.get(root);
    pooled?.delete(pfn);
    if (now !== undefined && regionOf(leafPhys(now)) !== null) {
      if (pooled === undefined) this.pooledLeaves.set(root, new Set([pfn]));
      else pooled.add(pfn);
    }
    for (const d of this.devs) {
      if (d.root !== root) continue;
      d.leafChanges.add(pfn);
      d.pending.add(pfn);
    }
  }

  /**
   * Re-read the present leaves of a domain over [first, first + pages): drop those based there,
   * walk the tables over the range (learning every table page passed), note what changed.
   */
  rereadLeaves(root: number, first: number, pages: number): void {
    const m = this.leaves.get(root);
    const d = this.devs.find((x) => x.root === root);
    if (m === undefined || d === undefined) return;
    const before = m.inRange(first, pages);
    const was = new Map<number, number>();
    for (let x = 0; x < before.length; x += 2) {
      was.set(before[x]!, before[x + 1]!);
      m.delete(before[x]!);
    }
    const last = first + pages - 1;
    const mem = this.memory;
    const s = this.scratch;
    const walk = (table: number, level: number, base: number): void => {
      this.tables.set(table, { root, level, base });
      if (table === this.quietPage) this.quietPage = -1;
      const span = lvlToNrPages(level);
      const lo = Math.max(first, base);
      const hi = Math.min(last, base + span * 512 - 1);
      if (lo > hi) return;
      // a written table page is read in place; one never written holds its pattern (read as the walk would)
      const words = mem.pageWords(table);
      for (let i = pfnLevelOffset(lo, level); i <= pfnLevelOffset(hi, level); i++) {
        if (words === undefined) mem.readQword(table * VTD_PAGE_SIZE + i * 8, s);
        const lo32 = words === undefined ? s[0]! : words[2 * i]!;
        if ((lo32 & 3) === 0) continue;
        const hi32 = words === undefined ? s[1]! : words[2 * i + 1]!;
        const iova = base + i * span;
        const next = entryPfn(lo32, hi32);
        if (level === 1 || (lo32 & DMA_PTE_LARGE_PAGE) !== 0) {
          // a superpage based before the range is not this range's to re-read
          if (iova >= first) m.set(iova, enc(next, level, lo32 & 3));
        } else walk(next, level - 1, iova);
      }
    };
    walk(root, d.levels, 0);
    // what changed, page by page, for the trace audit; and which leaves map pool pages
    let pooled = this.pooledLeaves.get(root);
    if (pooled === undefined) {
      pooled = new Set();
      this.pooledLeaves.set(root, pooled);
    }
    const owners = this.devs.filter((x) => x.root === root);
    const changed = (pfn: number, v: number): void => {
      for (let i = 0; i < lvlToNrPages(leafLevel(v)); i++) for (const o of owners) o.leafChanges.add(pfn + i);
    };
    for (let x = 0; x < before.length; x += 2) {
      const pfn = before[x]!;
      const v = before[x + 1]!;
      pooled.delete(pfn);
      if (m.get(pfn) !== v) changed(pfn, v);
    }
    const now = m.inRange(first, pages);
    for (let x = 0; x < now.length; x += 2) {
      const pfn = now[x]!;
      const v = now[x + 1]!;
      if (regionOf(leafPhys(v)) !== null) pooled.add(pfn);
      if (was.get(pfn) !== v) changed(pfn, v);
    }
  }
}
