/**
 * dma_pte_clear_level's step between entries, the one table-walk rule the releases do not share.
 * 5.10.262 adds level_size(level) to the (possibly unaligned) pfn it started from; 6.1 steps from
 * the entry's base (86dc40c7ea9c). Unmapping pfns 500..520, whose 2 MiB entry 0 is only partly
 * covered, 5.10 recurses into entry 0, then tries 500 + 512 = 1012 > 520 and stops: 512..520
 * stay mapped. 6.1 tries 0 + 512 = 512 and clears them.
 */
import { describe, expect, it } from 'vitest';
import { IntelPageTable } from '../../intel-common/intel-pgtable.js';
import { TablePages } from '../support/broken-tables.js';
import type { Release } from '../../kernel/release.js';
import { makePte } from '../../vtd/entries.js';
import { PhysMemory } from '../../vtd/memory.js';
import { DMA_PTE_READ, DMA_PTE_WRITE } from '../../vtd/regs.js';


function mappedAfterUnmap(release: Release, first: number, last: number): number[] {
  const memory = new PhysMemory();
  const pages = new TablePages(memory);
  const pt = new IntelPageTable(memory, pages, release);
  const d = { pgdPfn: pages.alloc(), agaw: 1, superpage: 0 }; // 3 levels, 39 bits
  for (let pfn = first; pfn <= last; pfn++) {
    const slot = pt.pfnToDmaPte(d, pfn, 1)!;
    const e = makePte(0x5000 + pfn, DMA_PTE_READ | DMA_PTE_WRITE);
    memory.writeQword(slot.addr, e.lo, e.hi);
  }
  pt.domainUnmap(d, first, last, []);
  const left: number[] = [];
  for (let pfn = first; pfn <= last; pfn++) {
    const slot = pt.pfnToDmaPte(d, pfn, 0)!;
    if (slot.level === 1 && pt.present(slot.addr)) left.push(pfn);
  }
  return left;
}

describe('dma_pte_clear_level over a range starting inside a 2 MiB entry', () => {
  it('5.10.262 stops one entry early: pfns 512..520 stay mapped', () => {
    expect(mappedAfterUnmap('5.10', 500, 520)).toEqual([512, 513, 514, 515, 516, 517, 518, 519, 520]);
  });

  it('6.1 clears the whole range', () => {
    expect(mappedAfterUnmap('6.1', 500, 520)).toEqual([]);
  });

  it('an aligned range (what size-aligned IOVAs give both paths) is cleared by both', () => {
    expect(mappedAfterUnmap('5.10', 512, 1023)).toEqual([]);
    expect(mappedAfterUnmap('6.1', 512, 1023)).toEqual([]);
  });
});
