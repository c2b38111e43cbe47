/**
 * The page-table invariant checks fire when a table is broken by hand. A 3-level table (agaw 1)
 * on a page source that hands out 0x100, 0x101, ... in order: the root is 0x100; mapping pfn 0
 * makes the level-2 table 0x101 (linked from 0x100000) and the level-1 table 0x102 (linked from
 * 0x101000, leaf slot 0x102000); mapping pfn 0x200 makes the level-1 table 0x103 (linked from
 * 0x101008).
 */
import { describe, expect, it } from 'vitest';
import { IntelIommuOps } from '../../dma-iommu/intel-iommu.js';
import { checkPgtableRange } from '../../intel-common/pgtable-invariants.js';
import { IntelPageTable } from '../../intel-common/intel-pgtable.js';
import { TablePages } from '../support/broken-tables.js';
import { InvariantError } from '../../kernel/assert.js';
import { DEFAULT_PLATFORM, Machine } from '../../platform/machine.js';
import { makePte } from '../../vtd/entries.js';
import { PhysMemory } from '../../vtd/memory.js';
import { DMA_PTE_LARGE_PAGE, DMA_PTE_READ, DMA_PTE_SNP, DMA_PTE_WRITE } from '../../vtd/regs.js';

const RW = DMA_PTE_READ | DMA_PTE_WRITE;


function table(superpage = 1): { memory: PhysMemory; pt: IntelPageTable; d: { pgdPfn: number; agaw: number; superpage: number } } {
  const memory = new PhysMemory();
  const pages = new TablePages(memory);
  const pt = new IntelPageTable(memory, pages, '6.1');
  const d = { pgdPfn: pages.alloc(), agaw: 1, superpage };
  for (const pfn of [0, 0x200]) {
    const slot = pt.pfnToDmaPte(d, pfn, 1)!;
    const e = makePte(0x5000 + pfn, RW);
    memory.writeQword(slot.addr, e.lo, e.hi);
  }
  return { memory, pt, d };
}

function write(memory: PhysMemory, addr: number, pfn: number, bits: number, hiExtra = 0): void {
  const e = makePte(pfn, bits);
  memory.writeQword(addr, e.lo, (e.hi | hiExtra) >>> 0);
}

const err = (after: string, range: string, what: string): InvariantError => new InvariantError(`page table after ${after} of pfns ${range}: ${what}`);

describe('page-table invariants over the touched range', () => {
  it('a sound table passes', () => {
    const { pt, d } = table();
    expect(() => checkPgtableRange(pt, d, 0, 0x3ff, 'a test')).not.toThrow();
  });

  it('a table page linked twice, found by the check after domain_unmap', () => {
    const { memory, pt, d } = table();
    write(memory, 0x101008, 0x102, RW);
    expect(() => pt.domainUnmap(d, 0x1ff, 0x200, [])).toThrow(
      err('domain_unmap', '0x1ff..0x200', 'the level-2 entry at 0x101008 (iova pfn 0x200) links table page 0x102, which is linked already'),
    );
  });

  it('the root linked as a child', () => {
    const { memory, pt, d } = table();
    write(memory, 0x101008, 0x100, RW);
    expect(() => checkPgtableRange(pt, d, 0x200, 0x200, 'a test')).toThrow(
      err('a test', '0x200..0x200', 'the level-2 entry at 0x101008 (iova pfn 0x200) links table page 0x100, which is linked already'),
    );
  });

  it('a non-leaf entry pointing to a page the allocator never handed out', () => {
    const { memory, pt, d } = table();
    write(memory, 0x101008, 0x999, RW);
    expect(() => checkPgtableRange(pt, d, 0x200, 0x200, 'a test')).toThrow(
      err('a test', '0x200..0x200', 'the level-2 entry at 0x101008 (iova pfn 0x200) points to 0x999, a page the page-table allocator did not hand out'),
    );
  });

  it('a root the allocator never handed out', () => {
    const { pt, d } = table();
    d.pgdPfn = 0x999;
    expect(() => checkPgtableRange(pt, d, 0, 0, 'a test')).toThrow(err('a test', '0x0..0x0', 'the root 0x999 is not a page the allocator handed out'));
  });

  it('a 2 MiB leaf in a domain without superpages', () => {
    const { memory, pt, d } = table(0);
    write(memory, 0x101008, 0x400, RW | DMA_PTE_LARGE_PAGE);
    expect(() => checkPgtableRange(pt, d, 0x200, 0x3ff, 'a test')).toThrow(
      err('a test', '0x200..0x3ff', "the level-2 entry at 0x101008 (iova pfn 0x200) is a superpage leaf at level 2, beyond the domain's superpage support (0)"),
    );
  });

  it('a 2 MiB leaf on an unaligned physical page; aligned, it passes', () => {
    const { memory, pt, d } = table(1);
    write(memory, 0x101008, 0x401, RW | DMA_PTE_LARGE_PAGE);
    expect(() => checkPgtableRange(pt, d, 0x200, 0x200, 'a test')).toThrow(
      err('a test', '0x200..0x200', 'the level-2 entry at 0x101008 (iova pfn 0x200) maps physical pfn 0x401, not aligned to its 512 pages'),
    );
    write(memory, 0x101008, 0x400, RW | DMA_PTE_LARGE_PAGE);
    expect(() => checkPgtableRange(pt, d, 0x200, 0x200, 'a test')).not.toThrow();
  });

  it('a 4 KiB leaf with the PS bit', () => {
    const { memory, pt, d } = table();
    write(memory, 0x102000, 0x5000, RW | DMA_PTE_LARGE_PAGE);
    expect(() => checkPgtableRange(pt, d, 0, 0, 'a test')).toThrow(err('a test', '0x0..0x0', 'the level-1 entry at 0x102000 (iova pfn 0x0) is a 4 KiB leaf with the PS bit'));
  });

  it('a leaf with a bit other than R, W, PS and SNP', () => {
    const { memory, pt, d } = table();
    write(memory, 0x102000, 0x5000, RW | DMA_PTE_SNP | 0x20);
    expect(() => checkPgtableRange(pt, d, 0, 0, 'a test')).toThrow(
      err('a test', '0x0..0x0', 'the level-1 entry at 0x102000 (iova pfn 0x0) is a leaf with bits other than R, W, PS and SNP (0x823)'),
    );
  });

  it('a non-present entry that is not zero', () => {
    const { memory, pt, d } = table();
    memory.writeQword(0x102008, 0x7000, 0);
    expect(() => checkPgtableRange(pt, d, 0, 1, 'a test')).toThrow(err('a test', '0x0..0x1', 'the level-1 entry at 0x102008 (iova pfn 0x1) is not present but not zero'));
  });

  it('bits above the address field', () => {
    const { memory, pt, d } = table();
    write(memory, 0x102000, 0x5000, RW, 0x100000);
    expect(() => checkPgtableRange(pt, d, 0, 0, 'a test')).toThrow(
      err('a test', '0x0..0x0', 'the level-1 entry at 0x102000 (iova pfn 0x0) has bits above the address set (0x100000)'),
    );
  });

  it('a non-leaf entry that is read-only', () => {
    const { memory, pt, d } = table();
    write(memory, 0x100000, 0x101, DMA_PTE_READ);
    expect(() => checkPgtableRange(pt, d, 0, 0, 'a test')).toThrow(
      err('a test', '0x0..0x0', 'the level-3 entry at 0x100000 (iova pfn 0x0) is a non-leaf entry whose bits are not R|W (0x1)'),
    );
  });

  it('only the touched range is walked: a broken entry outside it is not reported', () => {
    const { memory, pt, d } = table();
    write(memory, 0x101008, 0x999, RW);
    expect(() => checkPgtableRange(pt, d, 0, 0x1ff, 'a test')).not.toThrow();
  });
});

describe('through the drivers and the page-table allocator', () => {
  it("6.1's __domain_mapping checks what it mapped", () => {
    const m = new Machine('6.1', DEFAULT_PLATFORM);
    const pt = new IntelPageTable(m.memory, m.ptPages, '6.1');
    const ops = new IntelIommuOps(m, pt);
    const d = ops.domainAlloc(5);
    expect(ops.attachDev(d, 0x10)).toBe(0);
    expect(ops.mapPages(d, 0x1000n, 0x40000000n, 0x1000, 1, 3)).toEqual({ ret: 0, mapped: 0x1000 });
    const leaf = pt.pfnToDmaPte(d, 1, 1)!.addr;
    const e = m.memory.readU64(leaf);
    // the neighbouring leaf (pfn 2) gets the PS bit behind the driver's back
    m.memory.writeQword(leaf + 8, Number(e & 0xffff_ffffn) | DMA_PTE_LARGE_PAGE, Number(e >> 32n));
    expect(() => ops.mapPages(d, 0x3000n, 0x40003000n, 0x1000, 1, 3)).not.toThrow();
    expect(() => ops.mapPages(d, 0x1000n, 0x40001000n, 0x1000, 3, 3)).toThrow(
      /^page table after __domain_mapping of pfns 0x1\.\.0x3: the level-1 entry at 0x[0-9a-f]+ \(iova pfn 0x2\) is a 4 KiB leaf with the PS bit$/,
    );
  });

  it('a page-table page freed twice is a BUG at once', () => {
    const m = new Machine('6.1', DEFAULT_PLATFORM);
    const p = m.ptPages.alloc();
    expect(m.ptPages.handedOut(p)).toBe(true);
    m.ptPages.free(p);
    expect(m.ptPages.handedOut(p)).toBe(false);
    expect(() => m.ptPages.free(p)).toThrow(new InvariantError(`BUG: free_pgtable_page of 0x${p.toString(16)}, a page not handed out (or freed twice)`));
  });
});
