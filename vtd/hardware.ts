/**
 * One simulated VT-d remapping unit (a DRHD, "dmar0") in legacy mode, over simulated memory.
 *
 * What software sees: the cap/ecap registers, the root-table pointer and translation enable,
 * queued invalidation (descriptors read from memory) and the register interface, the fault
 * status and fault-recording registers. What a device sees: the DMA engine, which translates
 * every page by walking the root, context and second-level tables stored in memory, through a
 * context cache and an IOTLB that keep what they cached until software invalidates it.
 */
import type { TranslationJournal } from './journal.js';
import { capRegister, decodeCaps, ecapRegister, type CapFields, type VtdConfig } from './caps.js';
import { ContextCache, type CachedContext } from './context-cache.js';
import { ContextCoverage, IotlbCoverage } from './coverage.js';
import { decodeContext, entryPfn } from './entries.js';
import { encodeFaultRecord, type FaultRecord } from './fault.js';
import { Iotlb } from './iotlb.js';
import { PhysMemory } from './memory.js';
import { QiLog, type QiDesc } from './qi.js';
import {
  CONTEXT_TT_MULTI_LEVEL,
  CONTEXT_TT_DEV_IOTLB,
  CONTEXT_TT_PASS_THROUGH,
  DMA_CCMD_CAIG_SHIFT,
  DMA_CCMD_FM_SHIFT,
  DMA_CCMD_ICC,
  DMA_CCMD_SID_SHIFT,
  DMA_CCMD_CIRG_SHIFT,
  DMA_FSTS_IQE,
  DMA_FSTS_PFO,
  DMA_FSTS_PPF,
  DMA_PTE_LARGE_PAGE,
  DMA_PTE_READ,
  DMA_PTE_SNP,
  DMA_PTE_WRITE,
  DMA_TLB_DID_SHIFT,
  DMA_TLB_IAIG_SHIFT,
  DMA_TLB_IIRG_SHIFT,
  DMA_TLB_IVT,
  InvGranularity,
  QI_CC_TYPE,
  QI_DESC_SIZE,
  QI_DIOTLB_TYPE,
  QI_IEC_TYPE,
  QI_IOTLB_TYPE,
  QI_IWD_SW,
  QI_IWD_TYPE,
  QI_LENGTH,
  VTD_FR_ADDR_BEYOND_MGAW,
  VTD_FR_CONTEXT_ENTRY_INV,
  VTD_FR_CONTEXT_ENTRY_P,
  VTD_FR_PAGING_ENTRY_RSVD,
  VTD_FR_READ,
  VTD_FR_ROOT_ENTRY_P,
  VTD_FR_ROOT_ENTRY_RSVD,
  VTD_FR_CONTEXT_ENTRY_RSVD,
  VTD_FR_WRITE,
  VTD_PAGE_SIZE,
  agawToLevel,
  agawToWidth,
  lvlToNrPages,
  pfnLevelOffset,
} from './regs.js';

/** A device access that failed: what the device sees, whether or not a record was kept. */
export interface DmaFault {
  sid: number;
  reason: number;
  isRead: boolean;
  /** page address of the faulting access */
  addr: bigint;
  /** false when fault processing was disabled, or the record was dropped (overflow, collapse) */
  recorded: boolean;
}

export interface DmaReadResult {
  /** the bytes read before the first fault (all of them if none) */
  data: Uint8Array;
  fault?: DmaFault;
}

export interface DmaWriteResult {
  written: number;
  fault?: DmaFault;
}

export interface VtdCounters {
  iotlbHits: number;
  iotlbMisses: number;
  pageWalks: number;
  contextCacheHits: number;
  contextCacheMisses: number;
  faultsRecorded: number;
  faultsDropped: number;
  qiDescriptors: number;
  iotlbGlobal: number;
  iotlbDomain: number;
  iotlbPage: number;
  contextInvalidations: number;
  writeBufferFlushes: number;
}

/** pfns at or above this are beyond any 64-bit address */
const PFN_LIMIT_64 = 2 ** 52;

/** With translation off a request reaches its own address, up to 64 bits (GCMD.TE clear). */
function untranslated(pfn: number): number {
  return pfn < PFN_LIMIT_64 ? pfn : -VTD_FR_ADDR_BEYOND_MGAW;
}

export class VtdHardware {
  readonly cap: bigint;
  readonly ecap: bigint;
  readonly caps: CapFields;
  readonly iotlb: Iotlb;
  readonly contextCache: ContextCache;
  private readonly ctr: VtdCounters = {
    iotlbHits: 0,
    iotlbMisses: 0,
    pageWalks: 0,
    contextCacheHits: 0,
    contextCacheMisses: 0,
    faultsRecorded: 0,
    faultsDropped: 0,
    qiDescriptors: 0,
    iotlbGlobal: 0,
    iotlbDomain: 0,
    iotlbPage: 0,
    contextInvalidations: 0,
    writeBufferFlushes: 0,
  };
  /** While peeking, nothing is counted and nothing is cached. */
  private peeking = false;
  private journalRef: TranslationJournal | undefined;

  /**
   * Report every change a translation depends on to a journal (memory of the page-table
   * region, IOTLB, context cache, invalidations); undefined stops reporting.
   */
  set journal(j: TranslationJournal | undefined) {
    this.journalRef = j;
    this.memory.journal = j;
    this.iotlb.journal = j;
    this.contextCache.journal = j;
  }

  get journal(): TranslationJournal | undefined {
    return this.journalRef;
  }

  /** GCMD.TE as last set. */
  get translationOn(): boolean {
    return this.translationEnabled;
  }

  /** Whether caching mode is on (translations written after the last covering invalidation are unseen). */
  get cachingMode(): boolean {
    return this.cm;
  }

  get counters(): VtdCounters {
    return this.ctr;
  }

  /** The queued-invalidation descriptors processed, in order (the latest kept; tests and the demo read them). */
  readonly qiLog = new QiLog();

  private readonly iotlbCoverage = new IotlbCoverage();
  private readonly contextCoverage = new ContextCoverage();
  private readonly sagawMask: number;
  private readonly hawPfnLimit: number;
  private readonly has2M: boolean;
  private readonly has1G: boolean;
  private readonly cm: boolean;

  // registers
  private rtaddr = 0;
  private rootTablePfn = -1;
  private translationEnabled = false;
  private qiEnabled = false;
  private iqaBase = 0;
  private iqh = 0;
  private iqt = 0;
  private fsts = 0;
  private readonly faultRegs: (FaultRecord | undefined)[];
  private nextFaultReg = 0;
  private readonly scratch = new Uint32Array(2);
  private lastFaultSuppressed = false;

  constructor(
    readonly config: VtdConfig,
    readonly memory: PhysMemory = new PhysMemory(),
  ) {
    this.cap = capRegister(config);
    this.ecap = ecapRegister(config);
    this.caps = decodeCaps(this.cap, this.ecap);
    this.iotlb = new Iotlb(config.iotlbEntries);
    this.contextCache = new ContextCache(config.contextCacheEntries);
    this.sagawMask = this.caps.sagaw;
    this.hawPfnLimit = 2 ** (config.agaw - 12);
    this.has2M = (this.caps.superPageVal & 1) !== 0;
    this.has1G = (this.caps.superPageVal & 2) !== 0;
    this.cm = this.caps.cm;
    this.faultRegs = new Array<FaultRecord | undefined>(config.faultRecords).fill(undefined);
  }

  // ---------------------------------------------------------------- global command register

  /** RTADDR_REG then GCMD.SRTP: latch the root table (4 KiB aligned) for the walks. */
  setRootTable(addr: number): void {
    this.journalRef?.context();
    this.rtaddr = addr;
    this.rootTablePfn = Math.floor(addr / VTD_PAGE_SIZE);
  }

  get rootTableAddress(): number {
    return this.rtaddr;
  }

  /** GCMD.TE */
  enableTranslation(on: boolean): void {
    this.journalRef?.context();
    this.translationEnabled = on;
  }

  /** GCMD.WBF: the memory model is coherent, so only counted. */
  flushWriteBuffer(): void {
    this.ctr.writeBufferFlushes++;
  }

  // ---------------------------------------------------------------- queued invalidation

  /** IQA_REG then GCMD.QIE: the queue base (4 KiB aligned), head and tail reset to 0. */
  enableQueuedInvalidation(base: number): void {
    if (!this.caps.qi) throw new Error('queued invalidation not supported by this unit (ecap QI = 0)');
    this.iqaBase = base;
    this.iqh = 0;
    this.iqt = 0;
    this.qiEnabled = true;
  }

  get queuedInvalidationEnabled(): boolean {
    return this.qiEnabled;
  }

  get queueBase(): number {
    return this.iqaBase;
  }

  /** IQH_REG as a descriptor index. */
  get queueHead(): number {
    return this.iqh;
  }

  get queueTail(): number {
    return this.iqt;
  }

  /** IQT_REG write: the hardware fetches and executes descriptors from head up to the new tail. */
  writeQueueTail(tail: number): void {
    if (!this.qiEnabled) throw new Error('IQT written while queued invalidation is disabled');
    this.iqt = tail % QI_LENGTH;
    while (this.iqh !== this.iqt) {
      if ((this.fsts & DMA_FSTS_IQE) !== 0) return; // halted until software clears IQE
      const at = this.iqaBase + this.iqh * QI_DESC_SIZE;
      const d: QiDesc = { qw0: this.memory.readU64(at), qw1: this.memory.readU64(at + 8), qw2: 0n, qw3: 0n };
      if (!this.executeDescriptor(d)) {
        this.fsts |= DMA_FSTS_IQE;
        return;
      }
      this.qiLog.push(d);
      this.ctr.qiDescriptors++;
      this.iqh = (this.iqh + 1) % QI_LENGTH;
    }
  }

  private executeDescriptor(d: QiDesc): boolean {
    const lo0 = Number(d.qw0 & 0xffffffffn);
    const hi0 = Number((d.qw0 >> 32n) & 0xffffffffn);
    const type = lo0 & 0xf;
    const gran = (lo0 >>> 4) & 3;
    const did = (lo0 >>> 16) & 0xffff;
    switch (type) {
      case QI_CC_TYPE:
        return this.invalidateContext(gran, did, hi0 & 0xffff, (hi0 >>> 16) & 3);
      case QI_IOTLB_TYPE: {
        const am = Number(d.qw1 & 0x3fn);
        const pfn = Number(d.qw1 >> 12n);
        return this.invalidateIotlb(gran, did, pfn, am);
      }
      case QI_DIOTLB_TYPE:
      case QI_IEC_TYPE:
        return true; // no device-TLBs (no ATS) and no interrupt-remapping cache are modelled
      case QI_IWD_TYPE: {
        if ((lo0 & QI_IWD_SW) !== 0) {
          const addr = Number(d.qw1 & ~3n);
          const data = new Uint8Array(4);
          new DataView(data.buffer).setUint32(0, hi0 >>> 0, true);
          this.memory.write(addr, data);
        }
        return true;
      }
      default:
        return false;
    }
  }

  // ---------------------------------------------------------------- register-based invalidation

  /**
   * IVA_REG and IOTLB_REG writes: iva holds address | IH | AM, cmd the IVT, IIRG and DID fields.
   * Returns IOTLB_REG as read back afterwards (IVT clear, IAIG = the granularity performed).
   */
  writeIotlbRegister(iva: bigint, cmd: bigint): bigint {
    if ((cmd & DMA_TLB_IVT) === 0n) return cmd;
    const gran = Number((cmd >> DMA_TLB_IIRG_SHIFT) & 3n);
    const did = Number((cmd >> DMA_TLB_DID_SHIFT) & 0xffffn);
    const am = Number(iva & 0x3fn);
    const pfn = Number(iva >> 12n);
    const ok = this.invalidateIotlb(gran, did, pfn, am);
    const done = cmd & ~DMA_TLB_IVT & ~(3n << DMA_TLB_IAIG_SHIFT);
    return ok ? done | (BigInt(gran) << DMA_TLB_IAIG_SHIFT) : done;
  }

  /** CCMD_REG write; returns it as read back (ICC clear, CAIG = the granularity performed). */
  writeContextCommand(cmd: bigint): bigint {
    if ((cmd & DMA_CCMD_ICC) === 0n) return cmd;
    const gran = Number((cmd >> DMA_CCMD_CIRG_SHIFT) & 3n);
    const fm = Number((cmd >> DMA_CCMD_FM_SHIFT) & 3n);
    const sid = Number((cmd >> DMA_CCMD_SID_SHIFT) & 0xffffn);
    const did = Number(cmd & 0xffffn);
    const ok = this.invalidateContext(gran, did, sid, fm);
    const done = cmd & ~DMA_CCMD_ICC & ~(3n << DMA_CCMD_CAIG_SHIFT);
    return ok ? done | (BigInt(gran) << DMA_CCMD_CAIG_SHIFT) : done;
  }

  private invalidateIotlb(gran: number, did: number, pfn: number, am: number): boolean {
    const seq = this.memory.writeSeq;
    switch (gran) {
      case InvGranularity.Global:
        this.iotlb.invalidateAll();
        this.iotlbCoverage.recordGlobal(seq);
        this.journalRef?.invalidated(-1, 0, -1);
        this.ctr.iotlbGlobal++;
        return true;
      case InvGranularity.Domain:
        this.iotlb.invalidateDomain(did);
        this.iotlbCoverage.recordDomain(did, seq);
        this.journalRef?.invalidated(did, 0, -1);
        this.ctr.iotlbDomain++;
        return true;
      case InvGranularity.Page:
        // the kernel falls back to domain-selective when PSI is absent or AM > MAMV
        if (!this.caps.psi || am > this.caps.mamv) return false;
        this.iotlb.invalidatePages(did, pfn, am);
        this.iotlbCoverage.recordPages(did, pfn, am, seq);
        this.journalRef?.invalidated(did, pfn - (pfn % 2 ** am), 2 ** am);
        this.ctr.iotlbPage++;
        return true;
      default:
        return false;
    }
  }

  private invalidateContext(gran: number, did: number, sid: number, fm: number): boolean {
    const seq = this.memory.writeSeq;
    this.ctr.contextInvalidations++;
    switch (gran) {
      case InvGranularity.Global:
        this.contextCache.invalidateAll();
        this.contextCoverage.recordGlobal(seq);
        return true;
      case InvGranularity.Domain:
        this.contextCache.invalidateDomain(did);
        this.contextCoverage.recordDomain(did, seq);
        return true;
      case InvGranularity.Page:
        this.contextCache.invalidateDevice(sid, fm);
        this.contextCoverage.recordDevice(sid, fm, seq);
        return true;
      default:
        return false;
    }
  }

  // ---------------------------------------------------------------- fault registers

  /** FSTS_REG: PFO, PPF (set while any record has F), IQE, and FRI in bits 15:8. */
  readFaultStatus(): number {
    const ppf = this.faultRegs.some((r) => r !== undefined) ? DMA_FSTS_PPF : 0;
    return ((this.fsts & ~DMA_FSTS_PPF) | ppf | ((this.nextFaultIndexReported & 0xff) << 8)) >>> 0;
  }

  private nextFaultIndexReported = 0;

  /** Write-1-to-clear of PFO and IQE (PPF is read-only: it follows the records). */
  writeFaultStatus(value: number): void {
    this.fsts &= ~(value & (DMA_FSTS_PFO | DMA_FSTS_IQE));
  }

  get faultRecordCount(): number {
    return this.faultRegs.length;
  }

  /** Fault-recording register i as its two qwords (F clear when empty). */
  readFaultRecord(i: number): { low: bigint; high: bigint } {
    const r = this.faultRegs[i];
    return r === undefined ? { low: 0n, high: 0n } : encodeFaultRecord(r);
  }

  /** Writing 1 to F releases the record. */
  clearFaultRecord(i: number): void {
    this.faultRegs[i] = undefined;
  }

  /**
   * Record a fault as QEMU 7.2 does (vtd_report_dmar_fault): nothing while PFO is set; a second
   * fault from a source that already has a pending record is collapsed into it; a full next
   * register sets PFO.
   */
  private recordFault(rec: FaultRecord): boolean {
    if ((this.fsts & DMA_FSTS_PFO) !== 0) return false;
    if (this.faultRegs.some((r) => r !== undefined && r.sid === rec.sid)) return false;
    if (this.faultRegs[this.nextFaultReg] !== undefined) {
      this.fsts |= DMA_FSTS_PFO;
      return false;
    }
    const wasPending = this.faultRegs.some((r) => r !== undefined);
    this.faultRegs[this.nextFaultReg] = rec;
    if (!wasPending) this.nextFaultIndexReported = this.nextFaultReg;
    this.nextFaultReg = (this.nextFaultReg + 1) % this.faultRegs.length;
    return true;
  }

  // ---------------------------------------------------------------- translation

  /**
   * The context entry for sid: the context-cache entry itself on a hit (levels and width limit
   * were computed when it was inserted, so a hit allocates nothing), else read from memory.
   */
  private lookupContext(sid: number): CachedContext | number {
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
    if ((s[0]! & 1) === 0) return -VTD_FR_ROOT_ENTRY_P;
    const ctPfn = entryPfn(s[0]!, s[1]!);
    // legacy mode: low-qword bits 11:1, address bits above the width and the high qword are reserved
    const rootReserved = (s[0]! & 0xffe) !== 0 || ctPfn >= this.hawPfnLimit || (s[1]! & 0xfff00000) !== 0;
    this.memory.readQword(rootAddr + 8, s);
    if (rootReserved || s[0] !== 0 || s[1] !== 0) return -VTD_FR_ROOT_ENTRY_RSVD;
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
    if (ce.reservedBitsSet || ce.slptPfn >= this.hawPfnLimit) return -VTD_FR_CONTEXT_ENTRY_RSVD;
    // TT 3 is reserved, and TT 1 (device-TLB) is reserved on a unit without ecap DT (QEMU's default)
    if (ce.tt === 3 || ce.tt === CONTEXT_TT_DEV_IOTLB) return -VTD_FR_CONTEXT_ENTRY_INV;
    if (ce.tt !== CONTEXT_TT_PASS_THROUGH && ((this.sagawMask >>> ce.aw) & 1) === 0) return -VTD_FR_CONTEXT_ENTRY_INV;
    if (ce.did >= this.caps.ndoms) return -VTD_FR_CONTEXT_ENTRY_INV;
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
   * Translate one 4 KiB page of a device request. Returns the physical pfn, or a fault reason
   * negated. Hot path: plain numbers only.
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
    if (!this.translationEnabled) return untranslated(pfn);
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


  /** the R/W bits the last successful resolve() granted */
  private resolvedPerm = 0;

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
   * A number that changes whenever anything a translation depends on may have changed: table
   * memory, the IOTLB, the context cache, invalidation coverage. Equal versions, equal answers.
   */
  get translationVersion(): string {
    return `${this.memory.writeSeq}:${this.iotlb.version}:${this.contextCache.version}:${this.ctr.iotlbGlobal + this.ctr.iotlbDomain + this.ctr.iotlbPage + this.ctr.contextInvalidations}:${this.translationEnabled ? 1 : 0}`;
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
    return this.peekPermIn(this.translationEnabled ? this.peekContext(sid) : -1, pfn);
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
      const target = this.translationEnabled ? this.resolveIn(ctx, pfn, DMA_PTE_READ | DMA_PTE_WRITE, -1) : untranslated(pfn);
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

  // ---------------------------------------------------------------- device DMA engine

  private fault(sid: number, pfn: number, code: number, isRead: boolean): DmaFault {
    const reason = -code;
    const addr = BigInt(pfn) << 12n;
    let recorded = false;
    if (!this.lastFaultSuppressed) {
      recorded = this.recordFault({ sid, addr, isRead, reason });
    }
    if (recorded) this.ctr.faultsRecorded++;
    else this.ctr.faultsDropped++;
    return { sid, reason, isRead, addr, recorded };
  }

  /** A device read of len bytes at iova, page by page, stopping at the first fault. */
  dmaRead(sid: number, iova: bigint, len: number): DmaReadResult {
    let pfn = Number(iova >> 12n);
    let off = Number(iova & 0xfffn);
    const out = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const phys = pfn < PFN_LIMIT_64 ? this.translate(sid, pfn, false) : -VTD_FR_ADDR_BEYOND_MGAW;
      if (phys < 0) return { data: out.subarray(0, done), fault: this.fault(sid, pfn, phys, true) };
      const n = Math.min(len - done, VTD_PAGE_SIZE - off);
      this.memory.readInto(phys * VTD_PAGE_SIZE + off, out, done, n);
      done += n;
      pfn++;
      off = 0;
    }
    return { data: out };
  }

  /** A device write of data at iova, page by page; bytes before a faulting page are written. */
  dmaWrite(sid: number, iova: bigint, data: Uint8Array): DmaWriteResult {
    let pfn = Number(iova >> 12n);
    let off = Number(iova & 0xfffn);
    let done = 0;
    while (done < data.length) {
      const phys = pfn < PFN_LIMIT_64 ? this.translate(sid, pfn, true) : -VTD_FR_ADDR_BEYOND_MGAW;
      if (phys < 0) return { written: done, fault: this.fault(sid, pfn, phys, false) };
      const n = Math.min(data.length - done, VTD_PAGE_SIZE - off);
      this.memory.write(phys * VTD_PAGE_SIZE + off, data.subarray(done, done + n));
      done += n;
      pfn++;
      off = 0;
    }
    return { written: done };
  }
}
