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
  const fail = (what: string): never => {
    throw new InvariantError(`page table after ${after} of pfns ${hex(startPfn)}..${hex(lastPfn)}: ${what}`);
  };
  if (!pt.pages.handedOut(d.pgdPfn)) fail(`the root ${hex(d.pgdPfn)} is not a page the allocator handed out`);
  const seen = new Set<number>();
  const walk = (table: number, level: number, base: number): void => {
    const span = lvlToNrPages(level);
    const first = Math.max(0, Math.floor((startPfn - base) / span));
    const last = Math.min(PTES_PER_TABLE - 1, Math.floor((lastPfn - base) / span));
    for (let i = first; i <= last; i++) {
      const slot = table * VTD_PAGE_SIZE + i * 8;
      const s = pt.read(slot);
      const lo = s[0]!;
      const hi = s[1]!;
      const at = `the level-${level} entry at ${hex(slot)} (iova pfn ${hex(base + i * span)})`;
      if ((hi & ~HI_ADDR) !== 0) fail(`${at} has bits above the address set (${hex(hi >>> 0)})`);
      if ((lo & RW) === 0) {
        if (lo !== 0 || hi !== 0) fail(`${at} is not present but not zero`);
        continue;
      }
      const pfn = entryPfn(lo, hi);
      const large = (lo & DMA_PTE_LARGE_PAGE) !== 0;
      if (level === 1 || large) {
        if ((lo & 0xfff & ~LEAF_BITS) !== 0) fail(`${at} is a leaf with bits other than R, W, PS and SNP (${hex(lo & 0xfff)})`);
        if (level === 1 && large) fail(`${at} is a 4 KiB leaf with the PS bit`);
        if (level > 1 && level - 1 > d.superpage) fail(`${at} is a superpage leaf at level ${level}, beyond the domain's superpage support (${d.superpage})`);
        if (pfn % span !== 0) fail(`${at} maps physical pfn ${hex(pfn)}, not aligned to its ${span} pages`);
        continue;
      }
      if ((lo & 0xfff) !== RW) fail(`${at} is a non-leaf entry whose bits are not R|W (${hex(lo & 0xfff)})`);
      if (!pt.pages.handedOut(pfn)) fail(`${at} points to ${hex(pfn)}, a page the page-table allocator did not hand out`);
      if (pfn === d.pgdPfn || seen.has(pfn)) fail(`${at} links table page ${hex(pfn)}, which is linked already`);
      seen.add(pfn);
      walk(pfn, level - 1, base + i * span);
    }
  };
  walk(d.pgdPfn, agawToLevel(d.agaw), 0);
}
