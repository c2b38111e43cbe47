/**
 * A map from 4 KiB page numbers to numbers, kept in 512-page blocks so that the entries of a
 * range (a page-table entry's span) are found without visiting the rest: what the incremental
 * reachable sets and leaf shadows need at a million live mappings.
 */
const BLOCK = 512;

export class PageMap {
  private readonly blocks = new Map<number, Map<number, number>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(pfn: number): number | undefined {
    return this.blocks.get(Math.floor(pfn / BLOCK))?.get(pfn);
  }

  set(pfn: number, v: number): void {
    const b = Math.floor(pfn / BLOCK);
    let m = this.blocks.get(b);
    if (m === undefined) {
      m = new Map();
      this.blocks.set(b, m);
    }
    const had = m.has(pfn);
    m.set(pfn, v);
    if (!had) this.count++;
  }

  delete(pfn: number): boolean {
    const b = Math.floor(pfn / BLOCK);
    const m = this.blocks.get(b);
    if (m === undefined || !m.delete(pfn)) return false;
    this.count--;
    if (m.size === 0) this.blocks.delete(b);
    return true;
  }

  /** The entries with first <= pfn < first + pages (in no particular order). */
  inRange(first: number, pages: number): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    const last = first + pages - 1;
    if (pages <= 16) {
      // a page or a few (the common step): look each up rather than scan a block
      for (let pfn = first; pfn <= last; pfn++) {
        const v = this.blocks.get(Math.floor(pfn / BLOCK))?.get(pfn);
        if (v !== undefined) out.push([pfn, v]);
      }
      return out;
    }
    const b0 = Math.floor(first / BLOCK);
    const b1 = Math.floor(last / BLOCK);
    const visit = (m: Map<number, number>): void => {
      for (const [pfn, v] of m) if (pfn >= first && pfn <= last) out.push([pfn, v]);
    };
    if (b1 - b0 + 1 > this.blocks.size) {
      for (const [b, m] of this.blocks) if (b >= b0 && b <= b1) visit(m);
    } else {
      for (let b = b0; b <= b1; b++) {
        const m = this.blocks.get(b);
        if (m !== undefined) visit(m);
      }
    }
    return out;
  }

  entries(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (const m of this.blocks.values()) for (const e of m) out.push(e);
    return out;
  }

  clear(): void {
    this.blocks.clear();
    this.count = 0;
  }
}
