/**
 * A map from 4 KiB page numbers to non-negative numbers, kept in 64-page blocks of plain slots so
 * that a lookup is one hash probe and an array read, and the entries of a range (a page-table
 * entry's span) are found without visiting the rest: what the incremental reachable sets and leaf
 * shadows need at a million live mappings. Emptied blocks are kept for reuse (a map/unmap cycle
 * on one page allocates nothing).
 */
const BLOCK = 64;
const EMPTY = -1;
/** emptied blocks kept for reuse, at most */
const SPARE = 64;

class Block {
  readonly slots = new Float64Array(BLOCK).fill(EMPTY);
  n = 0;
}

export class PageMap {
  private readonly blocks = new Map<number, Block>();
  private readonly spare: Block[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(pfn: number): number | undefined {
    const k = Math.floor(pfn / BLOCK);
    const b = this.blocks.get(k);
    if (b === undefined) return undefined;
    const v = b.slots[pfn - k * BLOCK]!;
    return v === EMPTY ? undefined : v;
  }

  set(pfn: number, v: number): void {
    if (!(v >= 0)) throw new RangeError(`PageMap holds non-negative numbers, not ${v}`);
    const k = Math.floor(pfn / BLOCK);
    let b = this.blocks.get(k);
    if (b === undefined) {
      b = this.spare.pop() ?? new Block();
      this.blocks.set(k, b);
    }
    const i = pfn - k * BLOCK;
    if (b.slots[i] === EMPTY) {
      b.n++;
      this.count++;
    }
    b.slots[i] = v;
  }

  delete(pfn: number): boolean {
    const k = Math.floor(pfn / BLOCK);
    const b = this.blocks.get(k);
    if (b === undefined) return false;
    const i = pfn - k * BLOCK;
    if (b.slots[i] === EMPTY) return false;
    b.slots[i] = EMPTY;
    this.count--;
    if (--b.n === 0) {
      this.blocks.delete(k);
      if (this.spare.length < SPARE) this.spare.push(b);
    }
    return true;
  }

  /**
   * The entries with first <= pfn < first + pages, ascending within each block, as flat pairs
   * (pfn, value, pfn, value, ...) appended to `out` (a fresh array unless given).
   */
  inRange(first: number, pages: number, out: number[] = []): number[] {
    const last = first + pages - 1;
    const k0 = Math.floor(first / BLOCK);
    const k1 = Math.floor(last / BLOCK);
    if (k1 - k0 + 1 > this.blocks.size) {
      for (const [k, b] of this.blocks) if (k >= k0 && k <= k1) this.visit(k, b, first, last, out);
    } else {
      for (let k = k0; k <= k1; k++) {
        const b = this.blocks.get(k);
        if (b !== undefined) this.visit(k, b, first, last, out);
      }
    }
    return out;
  }

  private visit(k: number, b: Block, first: number, last: number, out: number[]): void {
    const base = k * BLOCK;
    const i0 = Math.max(0, first - base);
    const i1 = Math.min(BLOCK - 1, last - base);
    const s = b.slots;
    for (let i = i0; i <= i1; i++) {
      const v = s[i]!;
      if (v !== EMPTY) out.push(base + i, v);
    }
  }

  /** Every entry, as flat pairs (pfn, value, ...). */
  entries(): number[] {
    const out: number[] = [];
    for (const [k, b] of this.blocks) this.visit(k, b, k * BLOCK, k * BLOCK + BLOCK - 1, out);
    return out;
  }

  clear(): void {
    for (const b of this.blocks.values()) {
      if (this.spare.length >= SPARE) break;
      b.slots.fill(EMPTY);
      b.n = 0;
      this.spare.push(b);
    }
    this.blocks.clear();
    this.count = 0;
  }
}

/**
 * Page numbers collected over a step (pages to re-probe, to audit), repeats allowed, kept in one
 * growing typed array that is reused from step to step: adding costs a store, not a hash, and
 * settle() sorts and drops the repeats once, when they are read.
 */
export class PfnList {
  private buf = new Float64Array(16);
  private n = 0;

  get size(): number {
    return this.n;
  }

  add(pfn: number): void {
    // a list nobody reads for long (a device that shares a domain and makes no calls) stays
    // bounded by its distinct pages: repeats are dropped before it grows
    if (this.n === this.buf.length && (this.n < 1024 || this.settle() > this.buf.length / 2)) {
      const b = new Float64Array(this.buf.length * 2);
      b.set(this.buf);
      this.buf = b;
    }
    this.buf[this.n++] = pfn;
  }

  /** Add every page of another list to this one, and empty it. */
  takeFrom(other: PfnList): void {
    for (let i = 0; i < other.n; i++) this.add(other.buf[i]!);
    other.n = 0;
  }

  /** Sort ascending and drop repeats; returns how many pages are left (read with at()). */
  settle(): number {
    const n = this.n;
    if (n < 2) return n;
    const v = this.buf;
    // the usual lists are one or two ascending runs (a leaf's pages, then the same pages named
    // by their events): merged in one pass; anything else is sorted
    let cut = 1;
    while (cut < n && v[cut - 1]! <= v[cut]!) cut++;
    if (cut < n) {
      let end = cut + 1;
      while (end < n && v[end - 1]! <= v[end]!) end++;
      if (end === n) this.mergeRuns(cut);
      else v.subarray(0, n).sort();
    }
    let w = 1;
    for (let i = 1; i < n; i++) if (v[i] !== v[w - 1]) v[w++] = v[i]!;
    this.n = w;
    return w;
  }

  /** the first run's copy while merging (made on first need: most lists never merge) */
  private scratch: Float64Array | undefined;

  /** Merge the ascending runs [0, cut) and [cut, n) in place (through a scratch copy of the first). */
  private mergeRuns(cut: number): void {
    if (this.scratch === undefined || this.scratch.length < cut) this.scratch = new Float64Array(this.buf.length);
    const a = this.scratch;
    const v = this.buf;
    a.set(v.subarray(0, cut));
    let i = 0;
    let j = cut;
    let k = 0;
    while (i < cut && j < this.n) v[k++] = a[i]! <= v[j]! ? a[i++]! : v[j++]!;
    while (i < cut) v[k++] = a[i++]!;
  }

  at(i: number): number {
    return this.buf[i]!;
  }

  clear(): void {
    this.n = 0;
  }
}
