/**
 * Simulated physical memory: sparse 4 KiB pages, self-describing until written.
 *
 * Every little-endian 64-bit word at physical address p (p a multiple of 8) reads
 * 0xA5 << 56 | p until something writes it -- the pattern the real-kernel recordings used, so a
 * device read shows exactly which physical words it reached. Pages materialise on first write.
 *
 * Addresses are plain numbers: physical addresses stay below 2^52 (the PTE address field),
 * well inside the 2^53 that doubles hold exactly.
 *
 * Writes into the page-table region are stamped with a sequence number per 8-byte word; the
 * caching-mode model of the IOTLB uses the stamps to tell whether an entry was written after the
 * last invalidation that covered it (see iotlb.ts).
 */
import type { TranslationJournal } from './journal.js';
import { VTD_PAGE_SIZE, vtdHigh32, vtdLow32 } from './regs.js';
import { PAGE_TABLE_REGION, inRegion } from './regions.js';

const PATTERN_TAG = 0xa5000000; // the 0xA5 in bits 63:56, seen from the high dword
const TWO32 = 2 ** 32;
export const PHYS_ADDR_LIMIT = 2 ** 52;
/** the largest slab pages are carved from: 64 pages, 256 KiB */
const SLAB_MAX_PAGES = 64;

interface Page {
  bytes: Uint8Array;
  words: Uint32Array;
}

export class PhysMemory {
  private readonly pages = new Map<number, Page>();
  /** Per tracked page: the write sequence of each 8-byte word (0 = never written). */
  private readonly stamps = new Map<number, Float64Array>();
  private seq = 0;

  /** The current write sequence: every tracked write gets a higher one. */
  get writeSeq(): number {
    return this.seq;
  }

  /** Number of materialised pages (for leak reports and benchmarks). */
  get materialisedPages(): number {
    return this.pages.size;
  }

  private page(pfn: number): Page {
    let p = this.pages.get(pfn);
    if (p === undefined) {
      if (this.slabFree === 0) {
        // pages are carved out of slabs, each twice the last up to SLAB_MAX_PAGES: an ArrayBuffer
        // is memory outside the heap the collector tracks one by one, and a driver touching a
        // fresh page on every step would otherwise add one per step
        this.slabPages = Math.min(this.slabPages * 2, SLAB_MAX_PAGES);
        this.slab = new ArrayBuffer(this.slabPages * VTD_PAGE_SIZE);
        this.slabFree = this.slabPages;
      }
      const at = (this.slabPages - this.slabFree--) * VTD_PAGE_SIZE;
      const words = new Uint32Array(this.slab, at, VTD_PAGE_SIZE / 4);
      fillPattern(words, pfn);
      p = { bytes: new Uint8Array(this.slab, at, VTD_PAGE_SIZE), words };
      this.pages.set(pfn, p);
    }
    return p;
  }

  private slab = new ArrayBuffer(0);
  private slabPages = 1;
  private slabFree = 0;

  /**
   * A page's bytes as they are, without a copy: the written page itself, or for one still
   * holding its pattern the pattern in a scratch buffer, valid until the next read of this
   * memory. Readers must not write through it.
   */
  pageBytes(pfn: number): Uint8Array {
    return this.pages.get(pfn)?.bytes ?? this.patternPage(pfn);
  }

  /** The pattern of an unwritten page, generated into a scratch buffer (not stored). */
  private patternPage(pfn: number): Uint8Array {
    if (this.scratchPfn !== pfn) {
      fillPattern(this.scratchWords, pfn);
      this.scratchPfn = pfn;
    }
    return this.scratchBytes;
  }

  private readonly scratchWords = new Uint32Array(VTD_PAGE_SIZE / 4);
  private readonly scratchBytes = new Uint8Array(this.scratchWords.buffer);
  private scratchPfn = -1;

  private check(addr: number, len: number): void {
    if (!Number.isSafeInteger(addr) || addr < 0 || len < 0 || addr + len > PHYS_ADDR_LIMIT) {
      throw new RangeError(`physical address 0x${addr.toString(16)}+${len} outside the machine`);
    }
  }

  /** The pattern byte of an unwritten location. */
  static patternByte(addr: number): number {
    const word = addr - (addr % 8);
    const i = addr % 8;
    if (i < 4) return Math.floor((word % TWO32) / 2 ** (8 * i)) & 0xff;
    const hi = (PATTERN_TAG | Math.floor(word / TWO32)) >>> 0;
    return Math.floor(hi / 2 ** (8 * (i - 4))) & 0xff;
  }

  read(addr: number, len: number): Uint8Array {
    this.check(addr, len);
    const out = new Uint8Array(len);
    this.readInto(addr, out, 0, len);
    return out;
  }

  /** Copy [addr, addr + len) into out[at..]. Unmaterialised pages are generated, not stored. */
  readInto(addr: number, out: Uint8Array, at: number, len: number): void {
    let done = 0;
    while (done < len) {
      const a = addr + done;
      const pfn = Math.floor(a / VTD_PAGE_SIZE);
      const off = a - pfn * VTD_PAGE_SIZE;
      const n = Math.min(len - done, VTD_PAGE_SIZE - off);
      const p = this.pages.get(pfn);
      const src = p !== undefined ? p.bytes : this.patternPage(pfn);
      out.set(src.subarray(off, off + n), at + done);
      done += n;
    }
  }

  write(addr: number, data: Uint8Array): void {
    this.eachPage(addr, data.length, (page, off, n, done) => page.set(data.subarray(done, done + n), off));
  }

  fill(addr: number, len: number, value: number): void {
    this.eachPage(addr, len, (page, off, n) => page.fill(value & 0xff, off, off + n));
  }

  /** Apply a change to [addr, addr + len) page by page, materialising and stamping each page. */
  private eachPage(addr: number, len: number, change: (page: Uint8Array, off: number, n: number, done: number) => void): void {
    this.check(addr, len);
    let done = 0;
    while (done < len) {
      const a = addr + done;
      const pfn = Math.floor(a / VTD_PAGE_SIZE);
      const off = a - pfn * VTD_PAGE_SIZE;
      const n = Math.min(len - done, VTD_PAGE_SIZE - off);
      change(this.page(pfn).bytes, off, n, done);
      this.stamp(pfn, off, n);
      done += n;
    }
  }

  /** Copy len bytes from src to dst (both physical), as memcpy would; ranges must not overlap. */
  copy(dst: number, src: number, len: number): void {
    if (len === 0) return;
    this.write(dst, this.read(src, len));
  }

  /**
   * Read the 64-bit word at an 8-byte-aligned address as its two dwords: the hot path of page
   * walks, kept on plain numbers. Returns lo in [0], hi in [1] of the scratch array.
   */
  readQword(addr: number, out: Uint32Array): void {
    const pfn = Math.floor(addr / VTD_PAGE_SIZE);
    const idx = (addr - pfn * VTD_PAGE_SIZE) >>> 2;
    const p = this.pages.get(pfn);
    if (p !== undefined) {
      out[0] = p.words[idx]!;
      out[1] = p.words[idx + 1]!;
    } else {
      out[0] = addr % TWO32;
      out[1] = (PATTERN_TAG | Math.floor(addr / TWO32)) >>> 0;
    }
  }

  writeQword(addr: number, lo: number, hi: number): void {
    const pfn = Math.floor(addr / VTD_PAGE_SIZE);
    const off = addr - pfn * VTD_PAGE_SIZE;
    const p = this.page(pfn);
    p.words[off >>> 2] = lo >>> 0;
    p.words[(off >>> 2) + 1] = hi >>> 0;
    this.stamp(pfn, off, 8);
  }

  readU64(addr: number): bigint {
    const s = this.qword;
    this.readQword(addr, s);
    return (BigInt(s[1]!) << 32n) | BigInt(s[0]!);
  }

  private readonly qword = new Uint32Array(2);

  writeU64(addr: number, v: bigint): void {
    this.writeQword(addr, vtdLow32(v), vtdHigh32(v));
  }

  /** Zero a whole page (the kernel's alloc_pgtable_page returns zeroed pages). */
  zeroPage(pfn: number): void {
    this.page(pfn).bytes.fill(0);
    this.stamp(pfn, 0, VTD_PAGE_SIZE);
  }

  /**
   * The bytes of a written page as they are (no copy; readers must not write through it), or
   * undefined for a page still holding its pattern.
   */
  pageView(pfn: number): Uint8Array | undefined {
    return this.pages.get(pfn)?.bytes;
  }

  /** A written page's 32-bit words as they are (no copy, not to be written through), or undefined. */
  pageWords(pfn: number): Uint32Array | undefined {
    return this.pages.get(pfn)?.words;
  }

  /**
   * Whether [addr, addr + len) here holds the same bytes as [otherAddr, otherAddr + len) of
   * another memory, compared in place page by page (no copy unless a page still holds its
   * pattern on one side only).
   */
  sameBytes(addr: number, other: PhysMemory, otherAddr: number, len: number): boolean {
    let done = 0;
    while (done < len) {
      const a = addr + done;
      const b = otherAddr + done;
      const n = Math.min(len - done, VTD_PAGE_SIZE - (a % VTD_PAGE_SIZE), VTD_PAGE_SIZE - (b % VTD_PAGE_SIZE));
      const pa = this.pages.get(Math.floor(a / VTD_PAGE_SIZE))?.bytes;
      const pb = other.pages.get(Math.floor(b / VTD_PAGE_SIZE))?.bytes;
      if (pa !== undefined || pb !== undefined || a !== b) {
        // a page still holding its pattern is compared in its memory's scratch page (two
        // memories, two scratch pages; a memory against itself copies instead)
        const same = other === this;
        const x = pa !== undefined ? pa.subarray(a % VTD_PAGE_SIZE, (a % VTD_PAGE_SIZE) + n) : same ? this.read(a, n) : this.patternPage(Math.floor(a / VTD_PAGE_SIZE)).subarray(a % VTD_PAGE_SIZE, (a % VTD_PAGE_SIZE) + n);
        const y = pb !== undefined ? pb.subarray(b % VTD_PAGE_SIZE, (b % VTD_PAGE_SIZE) + n) : same ? other.read(b, n) : other.patternPage(Math.floor(b / VTD_PAGE_SIZE)).subarray(b % VTD_PAGE_SIZE, (b % VTD_PAGE_SIZE) + n);
        if (Buffer.compare(x, y) !== 0) return false;
      }
      done += n;
    }
    return true;
  }

  /** True once any byte of the page has been written. */
  isMaterialised(pfn: number): boolean {
    return this.pages.has(pfn);
  }

  /** Told of every tracked (page-table-region) write, when a derived view is kept current. */
  journal: TranslationJournal | undefined;

  private stamp(pfn: number, off: number, n: number): void {
    const base = pfn * VTD_PAGE_SIZE;
    if (!inRegion(PAGE_TABLE_REGION, base)) return;
    this.journal?.write(base + off, n);
    let st = this.stamps.get(pfn);
    if (st === undefined) {
      st = new Float64Array(VTD_PAGE_SIZE / 8);
      this.stamps.set(pfn, st);
    }
    const seq = ++this.seq;
    for (let w = off >>> 3; w <= (off + n - 1) >>> 3; w++) st[w] = seq;
  }

  /** Write sequence of the 8-byte word at addr (0 if never written or untracked). */
  writeSeqOf(addr: number): number {
    const pfn = Math.floor(addr / VTD_PAGE_SIZE);
    const st = this.stamps.get(pfn);
    return st === undefined ? 0 : st[(addr - pfn * VTD_PAGE_SIZE) >>> 3]!;
  }
}

/** Write the self-describing pattern of page pfn into words (1024 dwords). */
function fillPattern(words: Uint32Array, pfn: number): void {
  const base = pfn * VTD_PAGE_SIZE;
  // a page never crosses a 4 GiB boundary, so the high dword is the same for all its words
  const hi = (PATTERN_TAG | Math.floor(base / TWO32)) >>> 0;
  const lo = base % TWO32;
  for (let i = 0; i < VTD_PAGE_SIZE / 8; i++) {
    words[2 * i] = lo + i * 8;
    words[2 * i + 1] = hi;
  }
}
