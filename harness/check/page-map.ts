/**
 * A map from 4 KiB page numbers to non-negative numbers, kept in 64-page blocks so that a lookup
 * is one hash probe (none for the block looked at last) and an array read, and the entries of a
 * range (a page-table entry's span) are found without visiting the rest: what the incremental
 * reachable sets and leaf shadows need at a million live mappings. The blocks are slices of a
 * few large typed arrays per map, emptied ones reused: not one small typed array per block (each
 * of those an ArrayBuffer the collector tracks), and a map/unmap cycle on one page allocates
 * nothing.
 */
const BLOCK = 64;
const EMPTY = -1;
/** blocks per chunk of slots, 2^8: 128 KiB (the first chunk starts at FIRST_BLOCKS and doubles up to it) */
const CHUNK_SHIFT = 8;
const CHUNK_BLOCKS = 1 << CHUNK_SHIFT;
const FIRST_BLOCKS = 4;
/** emptied blocks left mapped before they are released together */
const PARKED_BLOCKS = 64;

export class PageMap {
  /** block key (pfn / BLOCK) -> the block's index */
  private readonly blocks = new Map<number, number>();
  /**
   * Block b holds slots [(b % CHUNK_BLOCKS) * BLOCK, ...) of chunks[b / CHUNK_BLOCKS]: chunks of
   * fixed size once past the first, so that growing never copies (a million entries would copy
   * megabytes at once, in the middle of some step)
   */
  private readonly chunks: Float64Array[] = []; // none until the first block: many maps stay empty for a whole run
  /** entries per block */
  private used = new Int32Array(FIRST_BLOCKS);
  /** emptied blocks, and how many blocks have been handed out */
  private readonly free: number[] = [];
  private made = 0;
  /** (key, block) of blocks emptied but still mapped, oldest first */
  private readonly emptied: number[] = [];
  private count = 0;
  /** the block last looked up (a get then a set of one page, or a run of pages, probe the Map once) */
  private lastKey = -1;
  private lastBlock = -1;

  get size(): number {
    return this.count;
  }

  /** The index of block k, or -1. */
  private block(k: number): number {
    if (k === this.lastKey) return this.lastBlock;
    const b = this.blocks.get(k) ?? -1;
    this.lastKey = k;
    this.lastBlock = b;
    return b;
  }

  private newBlock(k: number): number {
    let b = this.free.pop();
    if (b === undefined) {
      b = this.made++;
      const c = b >>> CHUNK_SHIFT;
      if (c === this.chunks.length) this.chunks.push(new Float64Array((c === 0 ? FIRST_BLOCKS : CHUNK_BLOCKS) * BLOCK).fill(EMPTY));
      else if (c === 0 && b * BLOCK === this.chunks[0]!.length) {
        const first = new Float64Array(Math.min(b * 2, CHUNK_BLOCKS) * BLOCK).fill(EMPTY);
        first.set(this.chunks[0]!);
        this.chunks[0] = first;
      }
      if (b === this.used.length) {
        const used = new Int32Array(b * 2);
        used.set(this.used);
        this.used = used;
      }
    }
    this.blocks.set(k, b);
    this.lastKey = k;
    this.lastBlock = b;
    return b;
  }

  /** the chunk holding block b */
  private chunk(b: number): Float64Array {
    return this.chunks[b >>> CHUNK_SHIFT]!;
  }

  /** where block b's slots start in its chunk */
  private static slotBase(b: number): number {
    return (b & (CHUNK_BLOCKS - 1)) * BLOCK;
  }

  get(pfn: number): number | undefined {
    const k = Math.floor(pfn / BLOCK);
    const b = this.block(k);
    if (b < 0) return undefined;
    const v = this.chunk(b)[PageMap.slotBase(b) + (pfn - k * BLOCK)]!;
    return v === EMPTY ? undefined : v;
  }

  set(pfn: number, v: number): void {
    if (!(v >= 0)) throw new RangeError(`PageMap holds non-negative numbers, not ${v}`);
    const k = Math.floor(pfn / BLOCK);
    let b = this.block(k);
    if (b < 0) b = this.newBlock(k);
    const slots = this.chunk(b);
    const i = PageMap.slotBase(b) + (pfn - k * BLOCK);
    if (slots[i] === EMPTY) {
      this.used[b]!++;
      this.count++;
    }
    slots[i] = v;
  }

  delete(pfn: number): boolean {
    const k = Math.floor(pfn / BLOCK);
    const b = this.block(k);
    if (b < 0) return false;
    const slots = this.chunk(b);
    const i = PageMap.slotBase(b) + (pfn - k * BLOCK);
    if (slots[i] === EMPTY) return false;
    slots[i] = EMPTY;
    this.count--;
    if (--this.used[b]! === 0) {
      // an emptied block stays mapped until a batch of them is released: a page mapped and
      // unmapped on every step, alone in its block, would otherwise add and remove a key of a
      // hash table of a million pages' blocks on every step
      this.emptied.push(k, b);
      if (this.emptied.length >= 2 * PARKED_BLOCKS) this.releaseEmptied();
    }
    return true;
  }

  /** Unmap the blocks emptied since the last release that are still empty, for reuse. */
  private releaseEmptied(): void {
    const e = this.emptied;
    for (let i = 0; i < e.length; i += 2) {
      const k = e[i]!;
      const b = e[i + 1]!;
      // a block emptied twice is listed twice; one refilled, or already reused for another key, stays
      if (this.used[b] === 0 && this.blocks.get(k) === b) {
        this.blocks.delete(k);
        this.free.push(b);
      }
    }
    e.length = 0;
    this.lastKey = -1;
    this.lastBlock = -1;
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

  private visit(k: number, b: number, first: number, last: number, out: number[]): void {
    const base = k * BLOCK;
    const i0 = Math.max(0, first - base);
    const i1 = Math.min(BLOCK - 1, last - base);
    const s = this.chunk(b);
    const at = PageMap.slotBase(b);
    for (let i = i0; i <= i1; i++) {
      const v = s[at + i]!;
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
      const at = PageMap.slotBase(b);
      this.chunk(b).fill(EMPTY, at, at + BLOCK);
      this.used[b] = 0;
      this.free.push(b);
    }
    this.blocks.clear();
    this.emptied.length = 0;
    this.count = 0;
    this.lastKey = -1;
    this.lastBlock = -1;
  }
}

/**
 * Page numbers collected over a step (pages to re-probe, to audit), repeats allowed, kept in one
 * growing typed array that is reused from step to step: adding costs a store, not a hash, and
 * settle() sorts and drops the repeats once, when they are read.
 */
export class PfnList {
  // (eight numbers fit in V8's heap; a larger typed array is an ArrayBuffer the collector tracks)
  private buf = new Float64Array(8);
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
