/**
 * Translation of a device request: the context lookup (QEMU's vtd_dev_to_context_entry(), with
 * its root- and context-entry checks) and the second-level walk (vtd_iova_to_slpte()), through
 * the context cache and the IOTLB; and the same answers without side effects (peek*) for the
 * reports of what a device can reach.
 *
 * The hottest code of the project: every device access and every reach probe comes through here.
 * Plain numbers and one scratch Uint32Array: no allocation, closure or BigInt per page.
 */
import type { CapFields, VtdConfig } from './caps.js';
import type { CachedContext, ContextCache } from './context-cache.js';
import type { VtdCounters } from './counters.js';
import type { ContextCoverage, IotlbCoverage } from './coverage.js';
import { decodeContext, entryPfn } from './entries.js';
import type { Iotlb } from './iotlb.js';
import type { PhysMemory } from './memory.js';
import {
  CONTEXT_TT_DEV_IOTLB,
  CONTEXT_TT_MULTI_LEVEL,
  CONTEXT_TT_PASS_THROUGH,
  DMA_PTE_LARGE_PAGE,
  DMA_PTE_READ,
  DMA_PTE_SNP,
  DMA_PTE_WRITE,
  ROOT_ENTRY_PRESENT,
  VTD_FR_ADDR_BEYOND_MGAW,
  VTD_FR_CONTEXT_ENTRY_INV,
  VTD_FR_CONTEXT_ENTRY_P,
  VTD_FR_CONTEXT_ENTRY_RSVD,
  VTD_FR_PAGING_ENTRY_RSVD,
  VTD_FR_READ,
  VTD_FR_ROOT_ENTRY_P,
  VTD_FR_ROOT_ENTRY_RSVD,
  VTD_FR_WRITE,
  VTD_PAGE_SIZE,
  VTD_ROOT_ENTRY_RSVD_DW0,
  VTD_ROOT_ENTRY_RSVD_DW1,
  VTD_ROOT_ENTRY_RSVD_DW2,
  VTD_ROOT_ENTRY_RSVD_DW3,
  agawToLevel,
  agawToWidth,
  lvlToNrPages,
  pfnLevelOffset,
  vtdHawPfnLimit,
} from './regs.js';

/** pfns at or above this are beyond any 64-bit address */
export const PFN_LIMIT_64 = 2 ** 52;

/** With translation off a request reaches its own address, up to 64 bits (GCMD.TE clear). */
function untranslated(pfn: number): number {
  return pfn < PFN_LIMIT_64 ? pfn : -VTD_FR_ADDR_BEYOND_MGAW;
}

/** What the walk reads and fills, besides its own latched registers. */
export interface WalkParts {
  readonly memory: PhysMemory;
  readonly iotlb: Iotlb;
  readonly contextCache: ContextCache;
  readonly iotlbCoverage: IotlbCoverage;
  readonly contextCoverage: ContextCoverage;
  readonly counters: VtdCounters;
}

export class VtdTranslation {
  /** The root table as GCMD.SRTP latched it, as a pfn (-1: none yet). */
  rootTablePfn = -1;
  /** GCMD.TE */
  enabled = false;
  /** Whether the context of the last lookup has FPD set: the DMA engine then records no fault. */
  lastFaultSuppressed = false;

  /** While peeking, nothing is counted and nothing is cached. */
  private peeking = false;
  /** the R/W bits the last successful resolve() granted */
  private resolvedPerm = 0;
  private readonly scratch = new Uint32Array(2);
  private readonly memory: PhysMemory;
  private readonly iotlb: Iotlb;
  private readonly contextCache: ContextCache;
  private readonly iotlbCoverage: IotlbCoverage;
  private readonly contextCoverage: ContextCoverage;
  private readonly ctr: VtdCounters;
  private readonly sagawMask: number;
  private readonly ndoms: number;
  private readonly hawPfnLimit: number;
  private readonly has2M: boolean;
  private readonly has1G: boolean;
  private readonly cm: boolean;

  constructor(config: VtdConfig, caps: CapFields, parts: WalkParts) {
    this.memory = parts.memory;
    this.iotlb = parts.iotlb;
    this.contextCache = parts.contextCache;
    this.iotlbCoverage = parts.iotlbCoverage;
    this.contextCoverage = parts.contextCoverage;
    this.ctr = parts.counters;
    this.sagawMask = caps.sagaw;
    this.ndoms = caps.ndoms;
    this.hawPfnLimit = vtdHawPfnLimit(config.agaw);
    this.has2M = (caps.superPageVal & 1) !== 0;
    this.has1G = (caps.superPageVal & 2) !== 0;
    this.cm = caps.cm;
  }

  /**
   * vtd_dev_to_context_entry(): the context entry for sid, or a fault reason negated. The
   * context-cache entry itself on a hit (levels and width limit were computed when it was
   * inserted, so a hit allocates nothing), else read from memory and checked.
   */
  lookupContext(sid: number): CachedContext | number {
    const cached = this.contextCache.lookup(sid);
    if (cached !== undefined) {
      if (!this.peeking) this.ctr.contextCacheHits++;
      this.lastFaultSuppressed = cached.fpd;
      return cached;
    }
    if (!this.peeking) this.ctr.contextCacheMisses++;
    this.lastFaultSuppressed = false;
    if (this.rootTablePfn < 0) return -VTD_FR_ROOT_ENTRY_P;
    const bus = sid >>> 8;
    const devfn = sid & 0xff;
    const rootAddr = this.rootTablePfn * VTD_PAGE_SIZE + bus * 16;
    const s = this.scratch;
    this.memory.readQword(rootAddr, s);
    let seq = this.memory.writeSeqOf(rootAddr);
    if ((s[0]! & ROOT_ENTRY_PRESENT) === 0) return -VTD_FR_ROOT_ENTRY_P;
    const ctPfn = entryPfn(s[0]!, s[1]!);
    // VTD_ROOT_ENTRY_RSVD(aw) on the low qword (its bits above HAW: the pfn check), then the
    // reserved high qword
    const rootReserved =
      (s[0]! & VTD_ROOT_ENTRY_RSVD_DW0) !== 0 || ctPfn >= this.hawPfnLimit || (s[1]! & VTD_ROOT_ENTRY_RSVD_DW1) !== 0;
    this.memory.readQword(rootAddr + 8, s);
    if (rootReserved || (s[0]! & VTD_ROOT_ENTRY_RSVD_DW2) !== 0 || (s[1]! & VTD_ROOT_ENTRY_RSVD_DW3) !== 0) {
      return -VTD_FR_ROOT_ENTRY_RSVD;
    }
    const ctxAddr = ctPfn * VTD_PAGE_SIZE + devfn * 16;
    this.memory.readQword(ctxAddr, s);
    const low = { lo: s[0]!, hi: s[1]! };
    this.memory.readQword(ctxAddr + 8, s);
    const high = { lo: s[0]!, hi: s[1]! };
    seq = Math.max(seq, this.memory.writeSeqOf(ctxAddr), this.memory.writeSeqOf(ctxAddr + 8));
    const ce = decodeContext(low, high);
    if (!ce.present) return -VTD_FR_CONTEXT_ENTRY_P;
    // caching mode: a context written after the last context-cache flush covering it is unseen
    if (this.cm && seq > this.contextCoverage.lastCovering(sid, ce.did)) return -VTD_FR_CONTEXT_ENTRY_P;
    this.lastFaultSuppressed = ce.fpd;
    // VTD_CONTEXT_ENTRY_RSVD_LO / _HI (vtd_context_entry_rsvd_bits_check)
    if (ce.reservedBitsSet || ce.slptPfn >= this.hawPfnLimit) return -VTD_FR_CONTEXT_ENTRY_RSVD;
    // TT 3 is reserved, and TT 1 (device-TLB) is reserved on a unit without ecap DT (QEMU's default)
    if (ce.tt === 3 || ce.tt === CONTEXT_TT_DEV_IOTLB) return -VTD_FR_CONTEXT_ENTRY_INV;
    if (ce.tt !== CONTEXT_TT_PASS_THROUGH && ((this.sagawMask >>> ce.aw) & 1) === 0) return -VTD_FR_CONTEXT_ENTRY_INV;
    if (ce.did >= this.ndoms) return -VTD_FR_CONTEXT_ENTRY_INV;
    const entry: CachedContext = {
      sid,
      did: ce.did,
      tt: ce.tt,
      slptPfn: ce.slptPfn,
      aw: ce.aw,
      fpd: ce.fpd,
      levels: agawToLevel(ce.aw),
      widthPfnLimit: 2 ** (agawToWidth(ce.aw) - 12),
    };
    if (!this.peeking) this.contextCache.insert(entry);
    return entry;
  }

  /**
   * Translate one 4 KiB page of a device request (vtd_do_iommu_translate()). Returns the physical
   * pfn, or a fault reason negated.
   */
  translate(sid: number, pfn: number, isWrite: boolean): number {
    return isWrite ? this.resolve(sid, pfn, DMA_PTE_WRITE, -VTD_FR_WRITE) : this.resolve(sid, pfn, DMA_PTE_READ, -VTD_FR_READ);
  }

  /**
   * The translation of pfn for a request needing `need` (R, W, or R|W for peekPerm): the target
   * pfn, `deny` when the permission is missing, or another fault reason negated; the R/W bits
   * granted are left in resolvedPerm.
   */
  private resolve(sid: number, pfn: number, need: number, deny: number): number {
    this.resolvedPerm = DMA_PTE_READ | DMA_PTE_WRITE;
    if (!this.enabled) return untranslated(pfn);
    return this.resolveIn(this.lookupContext(sid), pfn, need, deny);
  }

  /** resolve() past the context lookup, with its answer. */
  private resolveIn(ctx: CachedContext | number, pfn: number, need: number, deny: number): number {
    if (typeof ctx === 'number') return ctx;
    if (ctx.tt === CONTEXT_TT_PASS_THROUGH) return pfn < this.hawPfnLimit ? pfn : -VTD_FR_ADDR_BEYOND_MGAW;
    if (ctx.tt !== CONTEXT_TT_MULTI_LEVEL) return -VTD_FR_CONTEXT_ENTRY_INV;
    if (pfn >= ctx.widthPfnLimit) return -VTD_FR_ADDR_BEYOND_MGAW;
    const hit = this.iotlb.lookup(ctx.did, pfn);
    if (hit !== undefined) {
      if (!this.peeking) this.ctr.iotlbHits++;
      if ((hit.perm & need) === 0) return deny;
      this.resolvedPerm = hit.perm & (DMA_PTE_READ | DMA_PTE_WRITE);
      return hit.physBasePfn + (pfn - hit.basePfn);
    }
    if (!this.peeking) this.ctr.iotlbMisses++;
    return this.walk(ctx, pfn, need, deny);
  }

  /** vtd_iova_to_slpte(): the second-level walk from the context's table down to the leaf. */
  private walk(ctx: CachedContext, pfn: number, need: number, deny: number): number {
    if (!this.peeking) this.ctr.pageWalks++;
    const s = this.scratch;
    const mem = this.memory;
    let tablePfn = ctx.slptPfn;
    let perm = DMA_PTE_READ | DMA_PTE_WRITE;
    let maxSeq = 0;
    for (let level = ctx.levels; level >= 1; level--) {
      const addr = tablePfn * VTD_PAGE_SIZE + pfnLevelOffset(pfn, level) * 8;
      mem.readQword(addr, s);
      const lo = s[0]!;
      const hi = s[1]!;
      if (this.cm) maxSeq = Math.max(maxSeq, mem.writeSeqOf(addr));
      // QEMU checks the requested access at every level: a not-present entry fails it too (with
      // need R|W, peekPerm's, the walk goes on while either permission survives)
      perm &= lo;
      if ((perm & need) === 0) return deny;
      const nextPfn = entryPfn(lo, hi);
      if (nextPfn >= this.hawPfnLimit) return -VTD_FR_PAGING_ENTRY_RSVD;
      const ps = (lo & DMA_PTE_LARGE_PAGE) !== 0;
      if (level === 1 || ps) {
        let spanPfns = 1;
        if (level > 1) {
          const supported = (level === 2 && this.has2M) || (level === 3 && this.has1G);
          spanPfns = lvlToNrPages(level);
          if (!supported || nextPfn % spanPfns !== 0) return -VTD_FR_PAGING_ENTRY_RSVD;
        }
        // caching mode: a translation written after the last invalidation covering it is unseen
        if (this.cm && maxSeq > this.iotlbCoverage.lastCovering(ctx.did, pfn)) return deny;
        const basePfn = pfn - (pfn % spanPfns);
        if (!this.peeking) this.iotlb.insert(ctx.did, pfn, level, nextPfn, perm & 3, (lo & DMA_PTE_SNP) !== 0);
        this.resolvedPerm = perm & (DMA_PTE_READ | DMA_PTE_WRITE);
        return nextPfn + (pfn - basePfn);
      }
      tablePfn = nextPfn;
    }
    return deny; // unreachable: level 1 always returns
  }

  /**
   * What translate() would answer now, without touching the caches, the counters or the fault
   * registers: for reports of what the device can reach.
   */
  peek(sid: number, pfn: number, isWrite: boolean): number {
    const fs = this.lastFaultSuppressed;
    this.peeking = true;
    try {
      return this.translate(sid, pfn, isWrite);
    } finally {
      this.peeking = false;
      this.lastFaultSuppressed = fs;
    }
  }

  /**
   * What a read and a write of pfn would reach now, in one look: target pfn * 4 + the R/W bits
   * that would succeed, or -1 if neither. Exactly peek(sid, pfn, false) and peek(sid, pfn, true)
   * together (a walk that lacks one permission at a level goes on for the other; a reserved or
   * unsupported entry, or caching mode's unseen write, fails both). Exact for targets below
   * 2^51 (every page a paging structure can name: HAW is at most 52 bits).
   */
  peekPerm(sid: number, pfn: number): number {
    // (with translation off no context is looked up, as resolve() does)
    return this.peekPermIn(this.enabled ? this.peekContext(sid) : -1, pfn);
  }

  /**
   * peekPerm() with the context lookup's answer given: what peekContext(sid) says now, kept by a
   * caller that is told of every change it depends on (the harness's reach tracker), so that a
   * look does not decode the context entry from memory each time.
   */
  peekPermIn(ctx: CachedContext | number, pfn: number): number {
    this.resolvedPerm = DMA_PTE_READ | DMA_PTE_WRITE;
    const peeking = this.peeking;
    this.peeking = true;
    try {
      const target = this.enabled ? this.resolveIn(ctx, pfn, DMA_PTE_READ | DMA_PTE_WRITE, -1) : untranslated(pfn);
      return target < 0 ? -1 : target * 4 + this.resolvedPerm;
    } finally {
      this.peeking = peeking;
    }
  }

  /** The context sid resolves to now (as lookupContext, without caching or counting), or a fault reason negated. */
  peekContext(sid: number): CachedContext | number {
    const fs = this.lastFaultSuppressed;
    this.peeking = true;
    try {
      return this.lookupContext(sid);
    } finally {
      this.peeking = false;
      this.lastFaultSuppressed = fs;
    }
  }
}
