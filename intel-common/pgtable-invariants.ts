/**
 * What the VT-d drivers rely on of a domain's second-level table and never check, checked over
 * the part a map or unmap touched (run after each when invariantChecks.on): every present
 * non-leaf entry is R|W and points to a page the page-table allocator handed out and that no
 * other walked entry (nor the root) points to; a superpage leaf sits only at a level the
 * domain's superpage support allows and maps an aligned physical page; a 4 KiB leaf has no PS
 * bit; leaves carry only R, W, PS and SNP; a non-present entry is all zero. A table page linked
 * twice from outside the walked range is not seen: the walk costs what the change cost.
 */
import { InvariantError } from '../kernel/assert.js';
import { entryPfn } from '../vtd/entries.js';
import { DMA_PTE_LARGE_PAGE, DMA_PTE_READ, DMA_PTE_SNP, DMA_PTE_WRITE, PTES_PER_TABLE, VTD_PAGE_SIZE, agawToLevel, lvlToNrPages } from '../vtd/regs.js';
import type { DomainPgtable, IntelPageTable } from './intel-pgtable.js';

const RW = DMA_PTE_READ | DMA_PTE_WRITE;
const LEAF_BITS = RW | DMA_PTE_LARGE_PAGE | DMA_PTE_SNP;
/** the address field's bits 51:32 */
const HI_ADDR = 0xfffff;

const hex = (n: number): string => `0x${n.toString(16)}`;

/** Check the entries covering [startPfn, lastPfn] at every level; throws an InvariantError. */
export function checkPgtableRange(pt: IntelPageTable, d: DomainPgtable, startPfn: number, lastPfn: number, after: string): void {
  if (d.pgdPfn < 0) return;
  const c = new RangeCheck(pt, d, startPfn, lastPfn, after);
  if (!pt.pages.handedOut(d.pgdPfn)) c.fail(`the root ${hex(d.pgdPfn)} is not a page the allocator handed out`);
  c.walk(d.pgdPfn, agawToLevel(d.agaw), 0);
}

/** One check's walk; messages are built only when a rule is broken. */
class RangeCheck {
  private readonly seen = new Set<number>();

  constructor(
    private readonly pt: IntelPageTable,
    private readonly d: DomainPgtable,
    private readonly startPfn: number,
    private readonly lastPfn: number,
    private readonly after: string,
  ) {}

  fail(what: string): never {
    throw new InvariantError(`page table after ${this.after} of pfns ${hex(this.startPfn)}..${hex(this.lastPfn)}: ${what}`);
  }

  private broken(level: number, table: number, i: number, base: number, what: string): never {
    const span = lvlToNrPages(level);
    return this.fail(`the level-${level} entry at ${hex(table * VTD_PAGE_SIZE + i * 8)} (iova pfn ${hex(base + i * span)}) ${what}`);
  }

  walk(table: number, level: number, base: number): void {
    const span = lvlToNrPages(level);
    const first = Math.max(0, Math.floor((this.startPfn - base) / span));
    const last = Math.min(PTES_PER_TABLE - 1, Math.floor((this.lastPfn - base) / span));
    // table pages are zeroed when allocated, so they are in memory as words; the read is a fallback
    const words = this.pt.memory.pageWords(table);
    for (let i = first; i <= last; i++) {
      const s = words === undefined ? this.pt.read(table * VTD_PAGE_SIZE + i * 8) : undefined;
      const lo = s === undefined ? words![2 * i]! : s[0]!;
      const hi = s === undefined ? words![2 * i + 1]! : s[1]!;
      if ((hi & ~HI_ADDR) !== 0) this.broken(level, table, i, base, `has bits above the address set (${hex(hi >>> 0)})`);
      if ((lo & RW) === 0) {
        if (lo !== 0 || hi !== 0) this.broken(level, table, i, base, 'is not present but not zero');
        continue;
      }
      const pfn = entryPfn(lo, hi);
      const large = (lo & DMA_PTE_LARGE_PAGE) !== 0;
      if (level === 1 || large) {
        if ((lo & 0xfff & ~LEAF_BITS) !== 0) this.broken(level, table, i, base, `is a leaf with bits other than R, W, PS and SNP (${hex(lo & 0xfff)})`);
        if (level === 1 && large) this.broken(level, table, i, base, 'is a 4 KiB leaf with the PS bit');
        if (level > 1 && level - 1 > this.d.superpage)
          this.broken(level, table, i, base, `is a superpage leaf at level ${level}, beyond the domain's superpage support (${this.d.superpage})`);
        if (pfn % span !== 0) this.broken(level, table, i, base, `maps physical pfn ${hex(pfn)}, not aligned to its ${span} pages`);
        continue;
      }
      if ((lo & 0xfff) !== RW) this.broken(level, table, i, base, `is a non-leaf entry whose bits are not R|W (${hex(lo & 0xfff)})`);
      if (!this.pt.pages.handedOut(pfn)) this.broken(level, table, i, base, `points to ${hex(pfn)}, a page the page-table allocator did not hand out`);
      if (pfn === this.d.pgdPfn || this.seen.has(pfn)) this.broken(level, table, i, base, `links table page ${hex(pfn)}, which is linked already`);
      this.seen.add(pfn);
      this.walk(pfn, level - 1, base + i * span);
    }
  }
}
