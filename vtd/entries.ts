/**
 * Encoding and decoding of the in-memory structures: root entries, context entries (legacy
 * mode) and second-level PTEs, as the VT-d specification lays them out. Drivers write them with
 * these helpers (the kernel's dma_set_pte_*, context_set_* inlines); the hardware decodes them.
 *
 * PTEs travel as (lo, hi) dword pairs so the walk stays on plain numbers; the address field is
 * returned as a page frame number (bits 51:12 → at most 2^40, exact in a double).
 */
import {
  CONTEXT_PRESENT,
  DMA_PTE_LARGE_PAGE,
  DMA_PTE_READ,
  DMA_PTE_SNP,
  DMA_PTE_WRITE,
  ROOT_ENTRY_PRESENT,
  VTD_CONTEXT_ENTRY_RSVD_HI_DW2,
  VTD_CONTEXT_ENTRY_RSVD_HI_DW3,
  VTD_CONTEXT_ENTRY_RSVD_LO_DW0,
  VTD_PAGE_SIZE,
  vtdHigh32,
  vtdLow32,
} from './regs.js';
import type { PhysMemory } from './memory.js';

const TWO20 = 2 ** 20;
const TWO32 = 2 ** 32;

/** A 64-bit PTE value as two dwords. */
export interface Qword {
  lo: number;
  hi: number;
}

/** Build a second-level PTE: address pfn plus attribute bits in the low 12 bits. */
export function makePte(pfn: number, attrs: number): Qword {
  // pfn bits 19:0 go to address bits 31:12, pfn bits 39:20 to bits 51:32
  const lo = ((pfn % TWO20) * VTD_PAGE_SIZE + (attrs & 0xfff)) >>> 0;
  const hi = Math.floor(pfn / TWO20) >>> 0;
  return { lo, hi };
}

/** Address field (bits 51:12) of a PTE, root or context entry, as a pfn. */
export function entryPfn(lo: number, hi: number): number {
  return Math.floor((lo >>> 0) / VTD_PAGE_SIZE) + (hi & 0xfffff) * TWO20;
}

export function pteIsPresent(lo: number): boolean {
  return (lo & (DMA_PTE_READ | DMA_PTE_WRITE)) !== 0;
}

export function pteIsSuperpage(lo: number): boolean {
  return (lo & DMA_PTE_LARGE_PAGE) !== 0;
}

export function pteAttrs(lo: number): { r: boolean; w: boolean; ps: boolean; snp: boolean } {
  return {
    r: (lo & DMA_PTE_READ) !== 0,
    w: (lo & DMA_PTE_WRITE) !== 0,
    ps: (lo & DMA_PTE_LARGE_PAGE) !== 0,
    snp: (lo & DMA_PTE_SNP) !== 0,
  };
}

/** The full 64-bit value, for logs and tests. */
export function qwordToBigInt(q: Qword): bigint {
  return (BigInt(q.hi >>> 0) << 32n) | BigInt(q.lo >>> 0);
}

export function bigIntToQword(v: bigint): Qword {
  return { lo: vtdLow32(v), hi: vtdHigh32(v) };
}

// ---- root entries: 16 bytes, indexed by bus ----

export function makeRootEntry(contextTablePfn: number): Qword {
  const q = makePte(contextTablePfn, 0);
  return { lo: (q.lo | ROOT_ENTRY_PRESENT) >>> 0, hi: q.hi };
}

// ---- context entries: 16 bytes, indexed by devfn ----

export interface ContextEntry {
  present: boolean;
  fpd: boolean;
  /** translation type, bits 3:2 */
  tt: number;
  /** second-level page-table pointer as a pfn */
  slptPfn: number;
  /** AW field (the agaw: 1 = 39-bit/3-level, 2 = 48-bit/4-level, 3 = 57-bit/5-level) */
  aw: number;
  did: number;
}

/** Encode a context entry as its low and high qwords. */
export function encodeContext(ce: ContextEntry): { low: Qword; high: Qword } {
  const p = makePte(ce.slptPfn, 0);
  const lo = (p.lo | (ce.present ? CONTEXT_PRESENT : 0) | (ce.fpd ? 2 : 0) | ((ce.tt & 3) << 2)) >>> 0;
  const highLo = ((ce.aw & 7) | ((ce.did & 0xffff) << 8)) >>> 0;
  return { low: { lo, hi: p.hi }, high: { lo: highLo, hi: 0 } };
}

export function decodeContext(low: Qword, high: Qword): ContextEntry & { reservedBitsSet: boolean } {
  return {
    present: (low.lo & CONTEXT_PRESENT) !== 0,
    fpd: (low.lo & 2) !== 0,
    tt: (low.lo >>> 2) & 3,
    slptPfn: entryPfn(low.lo, low.hi),
    aw: high.lo & 7,
    did: (high.lo >>> 8) & 0xffff,
    // the fixed parts of VTD_CONTEXT_ENTRY_RSVD_LO and VTD_CONTEXT_ENTRY_RSVD_HI (the pointer's
    // bits above HAW are the caller's check: it knows the unit's width)
    reservedBitsSet:
      (low.lo & VTD_CONTEXT_ENTRY_RSVD_LO_DW0) !== 0 ||
      (high.lo & VTD_CONTEXT_ENTRY_RSVD_HI_DW2) !== 0 ||
      (high.hi & VTD_CONTEXT_ENTRY_RSVD_HI_DW3) !== 0,
  };
}

/**
 * Write sid's context entry (legacy mode), allocating the bus's context table through allocPage
 * when its root entry is absent. The high qword goes first, so the entry is never present with a
 * stale domain id or width (what the kernel's context_set_* sequence also ensures).
 */
export function writeContextEntry(mem: PhysMemory, rootPfn: number, sid: number, ce: ContextEntry, allocPage: () => number): void {
  const rootAddr = rootPfn * VTD_PAGE_SIZE + (sid >>> 8) * 16;
  const s = new Uint32Array(2);
  mem.readQword(rootAddr, s);
  let ctxPfn: number;
  if ((s[0]! & ROOT_ENTRY_PRESENT) === 0) {
    ctxPfn = allocPage();
    const re = makeRootEntry(ctxPfn);
    mem.writeQword(rootAddr, re.lo, re.hi);
  } else {
    ctxPfn = entryPfn(s[0]!, s[1]!);
  }
  const { low, high } = encodeContext(ce);
  const at = ctxPfn * VTD_PAGE_SIZE + (sid & 0xff) * 16;
  mem.writeQword(at + 8, high.lo, high.hi);
  mem.writeQword(at, low.lo, low.hi);
}

/** A source id (requester id): bus << 8 | devfn. */
export function sourceId(bus: number, dev: number, fn: number): number {
  return ((bus & 0xff) << 8) | ((dev & 0x1f) << 3) | (fn & 7);
}

/** Parse "bb:dd.f" (hex bus and device, decimal function). */
export function parseBdf(bdf: string): number | undefined {
  const m = /^([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/.exec(bdf);
  if (m === null) return undefined;
  const dev = parseInt(m[2]!, 16);
  if (dev > 0x1f) return undefined;
  return sourceId(parseInt(m[1]!, 16), dev, parseInt(m[3]!, 10));
}

/** "bb:dd.f" as the kernel prints it: %02x:%02x.%d. */
export function formatBdf(sid: number): string {
  const bus = (sid >>> 8) & 0xff;
  const dev = (sid >>> 3) & 0x1f;
  const fn = sid & 7;
  return `${bus.toString(16).padStart(2, '0')}:${dev.toString(16).padStart(2, '0')}.${fn}`;
}

/** The split of a 64-bit number held as a double into dwords (callers keep it below 2^53). */
export function numberToQword(v: number): Qword {
  return { lo: v % TWO32 >>> 0, hi: Math.floor(v / TWO32) >>> 0 };
}
