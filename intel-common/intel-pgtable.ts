/**
 * The VT-d driver's second-level page-table primitives (drivers/iommu/intel/iommu.c), shared by
 * both models because both releases' drivers walk, clear and free their tables the same way
 * (one exception, dma_pte_clear_level's step, takes the release):
 * pfn_to_dma_pte, dma_pfn_level_pte, dma_pte_clear_range, dma_pte_free_level /
 * dma_pte_free_pagetable, dma_pte_clear_level / domain_unmap (collecting freed table pages for
 * release after the IOTLB flush), hardware_largepage_caps and iova_to_phys. Keeping them in one
 * place means a divergence the harness finds comes from the DMA layer the migration changed, not
 * from two copies of the table code. Each release's mapping loop (__domain_mapping) lives with
 * its driver, because that is where 5.10.262 and 6.1 differ.
 *
 * Table pages live in simulated memory; a PTE is addressed by its physical slot address.
 */
import { entryPfn, makePte } from '../vtd/entries.js';
import type { PhysMemory } from '../vtd/memory.js';
import type { Release } from '../kernel/release.js';
import {
  DMA_PTE_LARGE_PAGE,
  DMA_PTE_READ,
  DMA_PTE_WRITE,
  PTES_PER_TABLE,
  VTD_PAGE_SIZE,
  agawToLevel,
  agawToWidth,
  levelBase,
  lvlToNrPages,
  modPow2,
  pfnLevelOffset,
} from '../vtd/regs.js';
import { iovaOffset, iovaPfn, pfnAddr } from '../kernel/bits.js';
import { invariantChecks } from '../kernel/assert.js';
import { checkPgtableRange } from './pgtable-invariants.js';

/** The table-related part of struct dmar_domain. */
export interface DomainPgtable {
  /** root table page (domain->pgd), or -1 once freed */
  pgdPfn: number;
  /** domain->agaw: levels = agaw + 2 */
  agaw: number;
  /** domain->iommu_superpage: 0 none, 1 = 2 MiB, 2 = 1 GiB (the levels above 4 KiB a leaf may sit at) */
  superpage: number;
}

export interface PageSource {
  /** alloc_pgtable_page: a zeroed page */
  alloc(): number;
  /** free_pgtable_page / put_pages_list */
  free(pfn: number): void;
  /** whether pfn is a page alloc() returned and free() has not taken back (for the invariant checks) */
  handedOut(pfn: number): boolean;
}

// lvl_to_nr_pages, pfn_level_offset and the level_mask-based base live with the hardware's
// constants (vtd/regs.ts) so that the hardware model, which must not import kernel code, uses
// the same arithmetic; re-exported here for the drivers.
export { lvlToNrPages };

/** level_size in pfns (same as lvl_to_nr_pages) */
const levelSize = lvlToNrPages;

/** align_to_level(pfn, level): round up to the level's page size */
function alignToLevel(pfn: number, level: number): number {
  const s = levelSize(level);
  return Math.ceil(pfn / s) * s;
}

function firstPteInPage(addr: number): boolean {
  return addr % VTD_PAGE_SIZE === 0;
}

/**
 * aligned_nrpages(host_addr, size): 4 KiB pages touched by [addr, addr + size). Only the
 * address's offset in its page counts: a 64-bit IOVA is given as iovaOffset(iova).
 */
export function alignedNrpages(addr: number, size: number): number {
  return Math.ceil(((addr % VTD_PAGE_SIZE) + size) / VTD_PAGE_SIZE);
}

/** A present leaf: the IOVA pfn it maps from, the physical pfn, its pages, its R/W bits. */
export interface PresentLeaf {
  iovaPfn: number;
  physPfn: number;
  pages: number;
  perm: number;
}

export class IntelPageTable {
  private readonly s = new Uint32Array(2);

  constructor(
    readonly memory: PhysMemory,
    readonly pages: PageSource,
    readonly release: Release,
  ) {}

  /** read a PTE as [lo, hi] (valid until the next read) */
  read(addr: number): Uint32Array {
    this.memory.readQword(addr, this.s);
    return this.s;
  }

  present(addr: number): boolean {
    return (this.read(addr)[0]! & (DMA_PTE_READ | DMA_PTE_WRITE)) !== 0;
  }

  superpage(addr: number): boolean {
    return (this.read(addr)[0]! & DMA_PTE_LARGE_PAGE) !== 0;
  }

  /** dma_pte_addr as a pfn */
  ptePfn(addr: number): number {
    const s = this.read(addr);
    return entryPfn(s[0]!, s[1]!);
  }

  clear(addr: number): void {
    this.memory.writeQword(addr, 0, 0);
  }

  /** the raw value, for "already set" messages */
  value(addr: number): bigint {
    return this.memory.readU64(addr);
  }

  /** domain_pfn_supported */
  pfnSupported(d: DomainPgtable, pfn: number): boolean {
    return pfn < 2 ** (agawToWidth(d.agaw) - 12);
  }

  /**
   * pfn_to_dma_pte: the slot for pfn at targetLevel, allocating missing tables (R|W non-leaf
   * entries). targetLevel 0 means "stop at a superpage or a non-present entry" and never
   * allocates; the level reached is returned with the slot.
   */
  pfnToDmaPte(d: DomainPgtable, pfn: number, targetLevel: number): { addr: number; level: number } | null {
    if (!this.pfnSupported(d, pfn)) return null;
    let level = agawToLevel(d.agaw);
    let table = d.pgdPfn;
    for (;;) {
      const addr = table * VTD_PAGE_SIZE + pfnLevelOffset(pfn, level) * 8;
      if (targetLevel === 0 && (this.superpage(addr) || !this.present(addr))) return { addr, level };
      if (level === targetLevel) return { addr, level };
      if (!this.present(addr)) {
        const page = this.pages.alloc();
        const e = makePte(page, DMA_PTE_READ | DMA_PTE_WRITE);
        this.memory.writeQword(addr, e.lo, e.hi);
      }
      if (level === 1) return { addr, level };
      table = this.ptePfn(addr);
      level--;
    }
  }

  /** dma_pfn_level_pte(pfn, 1, &large_page): the leaf slot covering pfn, or null (+ its level). */
  private leafPte(d: DomainPgtable, pfn: number): { addr: number | null; largePage: number } {
    let total = agawToLevel(d.agaw);
    let table = d.pgdPfn;
    const level = 1;
    while (level <= total) {
      const addr = table * VTD_PAGE_SIZE + pfnLevelOffset(pfn, total) * 8;
      if (level === total) return { addr, largePage: 1 };
      if (!this.present(addr)) return { addr: null, largePage: total };
      if (this.superpage(addr)) return { addr, largePage: total };
      table = this.ptePfn(addr);
      total--;
    }
    return { addr: null, largePage: 1 };
  }

  /** dma_pte_clear_range: clear the leaf entries of [start, last]; tables stay. */
  private clearRange(d: DomainPgtable, startPfn: number, lastPfn: number): void {
    do {
      const { addr, largePage } = this.leafPte(d, startPfn);
      if (addr === null) {
        startPfn = alignToLevel(startPfn + 1, largePage + 1);
        continue;
      }
      let pte = addr;
      do {
        this.clear(pte);
        startPfn += lvlToNrPages(largePage);
        pte += 8;
      } while (startPfn <= lastPfn && !firstPteInPage(pte));
    } while (startPfn !== 0 && startPfn <= lastPfn);
  }

  /** dma_pte_free_level: free tables below retainLevel wholly inside [start, last]. */
  private freeLevel(level: number, retainLevel: number, table: number, pfn: number, startPfn: number, lastPfn: number): void {
    pfn = Math.max(startPfn, pfn);
    let pte = table * VTD_PAGE_SIZE + pfnLevelOffset(pfn, level) * 8;
    do {
      if (this.present(pte) && !this.superpage(pte)) {
        const levelPfn = levelBase(pfn, level);
        const child = this.ptePfn(pte);
        if (level > 2) this.freeLevel(level - 1, retainLevel, child, levelPfn, startPfn, lastPfn);
        if (level < retainLevel && !(startPfn > levelPfn || lastPfn < levelPfn + levelSize(level) - 1)) {
          this.clear(pte);
          this.pages.free(child);
        }
      }
      pfn += levelSize(level);
      pte += 8;
    } while (!firstPteInPage(pte) && pfn <= lastPfn);
  }

  /** dma_pte_free_pagetable: clear the leaves, then free the tables below retainLevel at once. */
  freePagetable(d: DomainPgtable, startPfn: number, lastPfn: number, retainLevel: number): void {
    this.clearRange(d, startPfn, lastPfn);
    this.freeLevel(agawToLevel(d.agaw), retainLevel, d.pgdPfn, 0, startPfn, lastPfn);
    if (startPfn === 0 && lastPfn === 2 ** (agawToWidth(d.agaw) - 12) - 1) {
      this.pages.free(d.pgdPfn);
      d.pgdPfn = -1;
    }
    if (invariantChecks.on) checkPgtableRange(this, d, startPfn, lastPfn, 'dma_pte_free_pagetable');
  }

  /** dma_pte_list_pagetables: the table under a parent PTE and every table below it. */
  private listPagetables(level: number, parentPte: number, freelist: number[]): void {
    const page = this.ptePfn(parentPte);
    freelist.push(page);
    if (level === 1) return;
    let pte = page * VTD_PAGE_SIZE;
    do {
      if (this.present(pte) && !this.superpage(pte)) this.listPagetables(level - 1, pte, freelist);
      pte += 8;
    } while (!firstPteInPage(pte));
  }

  /** dma_pte_clear_level: clear [start, last]; tables wholly covered go on the freelist. */
  private clearLevel(level: number, table: number, pfn: number, startPfn: number, lastPfn: number, freelist: number[]): void {
    pfn = Math.max(startPfn, pfn);
    let pte = table * VTD_PAGE_SIZE + pfnLevelOffset(pfn, level) * 8;
    do {
      const levelPfn = levelBase(pfn, level);
      if (this.present(pte)) {
        if (startPfn <= levelPfn && lastPfn >= levelPfn + levelSize(level) - 1) {
          if (level > 1 && !this.superpage(pte)) this.listPagetables(level - 1, pte, freelist);
          this.clear(pte);
        } else if (level > 1) {
          this.clearLevel(level - 1, this.ptePfn(pte), levelPfn, startPfn, lastPfn, freelist);
        }
      }
      // 6.1 steps to the next entry's base (86dc40c7ea9c); 5.10.262 adds level_size to an
      // unaligned pfn, so a range starting mid-entry stops one entry early (size-aligned IOVAs
      // never start mid-entry, so neither path here meets the difference)
      pfn = (this.release === '6.1' ? levelPfn : pfn) + levelSize(level);
      pte += 8;
    } while (!firstPteInPage(pte) && pfn <= lastPfn);
  }

  /**
   * domain_unmap: clear [start, last] and collect the table pages it empties entirely; they may
   * only be freed after the IOTLB flush (the hardware may still walk them).
   */
  domainUnmap(d: DomainPgtable, startPfn: number, lastPfn: number, freelist: number[]): void {
    this.clearLevel(agawToLevel(d.agaw), d.pgdPfn, 0, startPfn, lastPfn, freelist);
    if (startPfn === 0 && lastPfn === 2 ** (agawToWidth(d.agaw) - 12) - 1) {
      freelist.push(d.pgdPfn);
      d.pgdPfn = -1;
    }
    if (invariantChecks.on) checkPgtableRange(this, d, startPfn, lastPfn, 'domain_unmap');
  }

  /** put_pages_list: release the collected pages */
  freeList(freelist: number[]): void {
    for (const p of freelist) this.pages.free(p);
    freelist.length = 0;
  }

  /** iova_to_phys: the physical address behind iova, 0 if nothing is mapped there */
  iovaToPhys(d: DomainPgtable, iova: bigint): bigint {
    const phys = this.iovaPfnToPhysPfn(d, iovaPfn(iova));
    return phys < 0 ? 0n : pfnAddr(phys) + BigInt(iovaOffset(iova));
  }

  /** iova_to_phys at page granularity, on numbers: the physical pfn behind an IOVA pfn, -1 if none. */
  iovaPfnToPhysPfn(d: DomainPgtable, pfn: number): number {
    const r = this.pfnToDmaPte(d, pfn, 0);
    if (r === null || !this.present(r.addr)) return -1;
    return this.ptePfn(r.addr) + modPow2(pfn, lvlToNrPages(r.level));
  }

  /**
   * Every present leaf: [iova pfn, phys pfn, pages, R/W bits] (reachable-set reports, the end
   * state's leak check). Table pages are read in place; one never written holds its pattern,
   * read as the walk would read it.
   */
  leaves(d: DomainPgtable): PresentLeaf[] {
    const out: PresentLeaf[] = [];
    if (d.pgdPfn >= 0) this.collectLeaves(d.pgdPfn, agawToLevel(d.agaw), 0, out);
    return out;
  }

  private collectLeaves(table: number, level: number, base: number, out: PresentLeaf[]): void {
    const words = this.memory.pageWords(table);
    for (let i = 0; i < PTES_PER_TABLE; i++) {
      const s = words === undefined ? this.read(table * VTD_PAGE_SIZE + i * 8) : undefined;
      const lo = s === undefined ? words![2 * i]! : s[0]!;
      if ((lo & (DMA_PTE_READ | DMA_PTE_WRITE)) === 0) continue;
      const hi = s === undefined ? words![2 * i + 1]! : s[1]!;
      const iovaPfn = base + i * levelSize(level);
      const next = entryPfn(lo, hi);
      if (level === 1 || (lo & DMA_PTE_LARGE_PAGE) !== 0) out.push({ iovaPfn, physPfn: next, pages: levelSize(level), perm: lo & 3 });
      else this.collectLeaves(next, level - 1, iovaPfn, out);
    }
  }
}

/**
 * hardware_largepage_caps: the largest level (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB) that the
 * domain's superpage support, the alignment of both pfns and the page count allow.
 */
export function hardwareLargepageCaps(superpageSupport: number, iovPfn: number, physPfn: number, pages: number): number {
  let support = superpageSupport;
  let level = 1;
  // the kernel ORs the two pfns; kept apart here because | truncates doubles above 2^32
  let iov = iovPfn;
  let phys = physPfn;
  while (support > 0 && iov % 512 === 0 && phys % 512 === 0) {
    pages = Math.floor(pages / 512);
    if (pages === 0) break;
    iov = Math.floor(iov / 512);
    phys = Math.floor(phys / 512);
    level++;
    support--;
  }
  return level;
}
