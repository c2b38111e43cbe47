/**
 * One simulated VT-d remapping unit (a DRHD, "dmar0") in legacy mode, over simulated memory.
 *
 * What software sees: the cap/ecap registers, the root-table pointer and translation enable,
 * queued invalidation (descriptors read from memory) and the register interface, the fault
 * status and fault-recording registers. What a device sees: the DMA engine, which translates
 * every page by walking the root, context and second-level tables stored in memory, through a
 * context cache and an IOTLB that keep what they cached until software invalidates it.
 *
 * This file holds the registers and composes the parts, as QEMU's intel_iommu.c splits them:
 * invalidation (qi.ts: vtd_process_inv_desc), fault recording (fault.ts: vtd_report_dmar_fault),
 * the context lookup and the walk (walk.ts: vtd_dev_to_context_entry, vtd_iova_to_slpte) and the
 * DMA engine (dma.ts).
 */
import type { TranslationJournal } from './journal.js';
import { capRegister, decodeCaps, ecapRegister, type CapFields, type VtdConfig } from './caps.js';
import { ContextCache, type CachedContext } from './context-cache.js';
import { newVtdCounters, type VtdCounters } from './counters.js';
import { ContextCoverage, IotlbCoverage } from './coverage.js';
import { DmaEngine, type DmaReadResult, type DmaWriteResult } from './dma.js';
import { FaultRecording } from './fault.js';
import { decodeContextCommand, decodeIotlbCommand, decodeIva } from './inv-reg.js';
import { Iotlb } from './iotlb.js';
import { PhysMemory } from './memory.js';
import { QiLog, VtdInvalidation } from './qi.js';
import { type QiDesc } from './qi-desc.js';
import {
  DMA_CCMD_CAIG_SHIFT,
  DMA_CCMD_ICC,
  DMA_FSTS_IQE,
  DMA_FSTS_PFO,
  DMA_TLB_IAIG_SHIFT,
  DMA_TLB_IVT,
  QI_DESC_SIZE,
  QI_LENGTH,
  VTD_PAGE_SIZE,
} from './regs.js';
import { VtdTranslation } from './walk.js';

export class VtdHardware {
  readonly cap: bigint;
  readonly ecap: bigint;
  readonly caps: CapFields;
  readonly iotlb: Iotlb;
  readonly contextCache: ContextCache;
  private readonly ctr: VtdCounters = newVtdCounters();
  private journalRef: TranslationJournal | undefined;

  /** The queued-invalidation descriptors processed, in order (the latest kept; tests and the demo read them). */
  readonly qiLog = new QiLog();

  // the parts
  private readonly invalidation: VtdInvalidation;
  private readonly faults: FaultRecording;
  private readonly translation: VtdTranslation;
  private readonly dma: DmaEngine;

  // registers (the root table and TE, as latched, are the translation's)
  private rtaddr = 0;
  private qiEnabled = false;
  private iqaBase = 0;
  private iqh = 0;
  private iqt = 0;
  /** FSTS.IQE: set by an invalid descriptor, halting the queue until software clears it */
  private iqe = false;

  constructor(
    readonly config: VtdConfig,
    readonly memory: PhysMemory = new PhysMemory(),
  ) {
    this.cap = capRegister(config);
    this.ecap = ecapRegister(config);
    this.caps = decodeCaps(this.cap, this.ecap);
    this.iotlb = new Iotlb(config.iotlbEntries);
    this.contextCache = new ContextCache(config.contextCacheEntries);
    const iotlbCoverage = new IotlbCoverage();
    const contextCoverage = new ContextCoverage();
    const shared = { memory, iotlb: this.iotlb, contextCache: this.contextCache, iotlbCoverage, contextCoverage, counters: this.ctr };
    this.invalidation = new VtdInvalidation({ ...shared, psi: this.caps.psi, mamv: this.caps.mamv });
    this.faults = new FaultRecording(config.faultRecords);
    this.translation = new VtdTranslation(config, this.caps, shared);
    this.dma = new DmaEngine(memory, this.translation, this.faults, this.ctr);
  }

  /**
   * Report every change a translation depends on to a journal (memory of the page-table
   * region, IOTLB, context cache, invalidations); undefined stops reporting.
   */
  set journal(j: TranslationJournal | undefined) {
    this.journalRef = j;
    this.memory.journal = j;
    this.iotlb.journal = j;
    this.contextCache.journal = j;
    this.invalidation.journal = j;
  }

  get journal(): TranslationJournal | undefined {
    return this.journalRef;
  }

  /** GCMD.TE as last set. */
  get translationOn(): boolean {
    return this.translation.enabled;
  }

  /** Whether caching mode is on (translations written after the last covering invalidation are unseen). */
  get cachingMode(): boolean {
    return this.caps.cm;
  }

  get counters(): VtdCounters {
    return this.ctr;
  }

  // ---------------------------------------------------------------- global command register

  /** RTADDR_REG then GCMD.SRTP: latch the root table (4 KiB aligned) for the walks. */
  setRootTable(addr: number): void {
    this.journalRef?.context();
    this.rtaddr = addr;
    this.translation.rootTablePfn = Math.floor(addr / VTD_PAGE_SIZE);
  }

  get rootTableAddress(): number {
    return this.rtaddr;
  }

  /** GCMD.TE */
  enableTranslation(on: boolean): void {
    this.journalRef?.context();
    this.translation.enabled = on;
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

  /**
   * IQT_REG write (QEMU vtd_handle_iqt_write, vtd_fetch_inv_desc): the hardware fetches and
   * executes descriptors from head up to the new tail; an invalid one sets IQE and stays at head.
   */
  writeQueueTail(tail: number): void {
    if (!this.qiEnabled) throw new Error('IQT written while queued invalidation is disabled');
    this.iqt = tail % QI_LENGTH;
    while (this.iqh !== this.iqt) {
      if (this.iqe) return; // halted until software clears IQE
      const at = this.iqaBase + this.iqh * QI_DESC_SIZE;
      const d: QiDesc = { qw0: this.memory.readU64(at), qw1: this.memory.readU64(at + 8), qw2: 0n, qw3: 0n };
      if (!this.invalidation.processInvDesc(d)) {
        this.iqe = true;
        return;
      }
      this.qiLog.push(d);
      this.ctr.qiDescriptors++;
      this.iqh = (this.iqh + 1) % QI_LENGTH;
    }
  }

  // ---------------------------------------------------------------- register-based invalidation

  /**
   * IVA_REG and IOTLB_REG writes (QEMU vtd_iotlb_flush): iva holds address | IH | AM, cmd the IVT,
   * IIRG and DID fields. Returns IOTLB_REG as read back afterwards (IVT clear, IAIG = the
   * granularity performed).
   */
  writeIotlbRegister(iva: bigint, cmd: bigint): bigint {
    const c = decodeIotlbCommand(cmd);
    if (!c.ivt) return cmd;
    const a = decodeIva(iva);
    const ok = this.invalidation.invalidateIotlb(c.gran, c.did, a.pfn, a.am);
    const done = cmd & ~DMA_TLB_IVT & ~(3n << DMA_TLB_IAIG_SHIFT);
    return ok ? done | (BigInt(c.gran) << DMA_TLB_IAIG_SHIFT) : done;
  }

  /**
   * CCMD_REG write (QEMU vtd_context_cache_invalidate); returns it as read back (ICC clear, CAIG
   * = the granularity performed).
   */
  writeContextCommand(cmd: bigint): bigint {
    const c = decodeContextCommand(cmd);
    if (!c.icc) return cmd;
    const ok = this.invalidation.invalidateContext(c.gran, c.did, c.sid, c.fm);
    const done = cmd & ~DMA_CCMD_ICC & ~(3n << DMA_CCMD_CAIG_SHIFT);
    return ok ? done | (BigInt(c.gran) << DMA_CCMD_CAIG_SHIFT) : done;
  }

  // ---------------------------------------------------------------- fault registers

  /** FSTS_REG: PFO, PPF (set while any record has F), IQE, and FRI in bits 15:8. */
  readFaultStatus(): number {
    return (this.faults.status() | (this.iqe ? DMA_FSTS_IQE : 0)) >>> 0;
  }

  /** Write-1-to-clear of PFO and IQE (PPF is read-only: it follows the records). */
  writeFaultStatus(value: number): void {
    if ((value & DMA_FSTS_PFO) !== 0) this.faults.clearOverflow();
    if ((value & DMA_FSTS_IQE) !== 0) this.iqe = false;
  }

  get faultRecordCount(): number {
    return this.faults.count;
  }

  /** Fault-recording register i as its two qwords (F clear when empty). */
  readFaultRecord(i: number): { low: bigint; high: bigint } {
    return this.faults.read(i);
  }

  /** Writing 1 to F releases the record. */
  clearFaultRecord(i: number): void {
    this.faults.clear(i);
  }

  // ---------------------------------------------------------------- translation (walk.ts)

  /**
   * Translate one 4 KiB page of a device request. Returns the physical pfn, or a fault reason
   * negated. Hot path: plain numbers only.
   */
  translate(sid: number, pfn: number, isWrite: boolean): number {
    return this.translation.translate(sid, pfn, isWrite);
  }

  /**
   * A number that changes whenever anything a translation depends on may have changed: table
   * memory, the IOTLB, the context cache, invalidation coverage. Equal versions, equal answers.
   */
  get translationVersion(): string {
    const c = this.ctr;
    return `${this.memory.writeSeq}:${this.iotlb.version}:${this.contextCache.version}:${c.iotlbGlobal + c.iotlbDomain + c.iotlbPage + c.contextInvalidations}:${this.translation.enabled ? 1 : 0}`;
  }

  /** VtdTranslation.peek: translate() without touching caches, counters or fault registers. */
  peek(sid: number, pfn: number, isWrite: boolean): number {
    return this.translation.peek(sid, pfn, isWrite);
  }

  /** VtdTranslation.peekPerm: target pfn * 4 + the R/W bits a read and a write would get, or -1. */
  peekPerm(sid: number, pfn: number): number {
    return this.translation.peekPerm(sid, pfn);
  }

  /** VtdTranslation.peekPermIn: peekPerm() with the context lookup's answer given. */
  peekPermIn(ctx: CachedContext | number, pfn: number): number {
    return this.translation.peekPermIn(ctx, pfn);
  }

  /** The context sid resolves to now (without caching or counting), or a fault reason negated. */
  peekContext(sid: number): CachedContext | number {
    return this.translation.peekContext(sid);
  }

  // ---------------------------------------------------------------- device DMA engine (dma.ts)

  /** A device read of len bytes at iova, page by page, stopping at the first fault. */
  dmaRead(sid: number, iova: bigint, len: number): DmaReadResult {
    return this.dma.dmaRead(sid, iova, len);
  }

  /** A device write of data at iova, page by page; bytes before a faulting page are written. */
  dmaWrite(sid: number, iova: bigint, data: Uint8Array): DmaWriteResult {
    return this.dma.dmaWrite(sid, iova, data);
  }
}
