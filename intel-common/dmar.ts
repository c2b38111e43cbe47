/**
 * The VT-d unit as the driver sees it (struct intel_iommu, drivers/iommu/intel/dmar.c and the
 * unit-level parts of intel/iommu.c), shared by both models: both releases drive the hardware the
 * same way here, and where they differ the release parameter decides.
 *
 *  - root table and queued invalidation set-up; domain ids (0 and 1 reserved in both releases:
 *    kernel-semantics 10.0 #7, 9.5.1);
 *  - domain_context_mapping_one: context entry, then under caching mode a device-selective
 *    context-cache flush (DID 0) and a domain-selective IOTLB flush, else a write-buffer flush;
 *  - qi_submit_sync with qi_flush_context / qi_flush_iotlb (IH never reaches the descriptor:
 *    QI_IOTLB_ADDR masks the low 12 bits), and the register path when QI is absent;
 *    6.1 traces every caller descriptor as intel_iommu:qi_submit, 5.10 has no such event;
 *  - iommu_flush_iotlb_psi with the non-aligned mask fix (59bf3557cf2f, present in both);
 *  - dmar_fault: the status line and one line per record, in each release's format, under one
 *    ratelimit state that every loop iteration consults.
 */
import type { VtdHardware } from '../vtd/hardware.js';
import { writeContextEntry } from '../vtd/entries.js';
import { decodeFaultRecord, dmarFaultLine } from '../vtd/fault.js';
import { writeQueue } from '../vtd/qi.js';
import { ccDescriptor, iotlbDescriptor, qiTypeName, waitDescriptor, type QiDesc } from '../vtd/qi-desc.js';
import { contextCommand, iotlbCommand } from '../vtd/inv-reg.js';
import {
  CONTEXT_TT_MULTI_LEVEL,
  DMA_CCMD_MASK_NOBIT,
  DMA_FSTS_PFO,
  DMA_FSTS_PPF,
  DMA_TLB_IAIG_SHIFT,
  DMA_TLB_IH_NONLEAF,
  InvGranularity,
  QI_LENGTH,
  VTD_PAGE_SIZE,
} from '../vtd/regs.js';
import type { PageSource } from './intel-pgtable.js';
import { RateLimit, type KernelLog } from '../kernel/log.js';
import { roundupPowOfTwo, type Release } from '../kernel/release.js';
import { fmtQiSubmit, type TraceRing } from '../kernel/trace.js';
import { pfnAddr } from '../kernel/bits.js';

/** QI_DONE in the kernel's desc_status[] */
const QI_DONE = 2;

export interface DmarCounters {
  /** page-selective flushes of new mappings under caching mode (__mapping_notify_one) */
  mapFlushes: number;
  psi: number;
  dsi: number;
  global: number;
  contextFlushes: number;
  writeBufferFlushes: number;
}

export class DmarUnit {
  readonly name = 'dmar0';
  readonly rootPfn: number;
  private readonly qiStatusPfn: number = -1;
  private freeHead = 0;
  /**
   * Domain ids in use, starting with the two iommu_init_domains reserves in 5.10.262 and 6.1
   * alike: did 0 (caching mode tags invalid translations with it, and 0 marks "no domain id")
   * and FLPT_DEFAULT_DID = 1 (first-level / pass-through PASID entries, and the identity domain
   * in legacy mode).
   */
  private readonly domainIds = new Set<number>([0, 1]);
  private readonly faultLimit = new RateLimit('dmar_fault');
  readonly counters: DmarCounters = { mapFlushes: 0, psi: 0, dsi: 0, global: 0, contextFlushes: 0, writeBufferFlushes: 0 };
  private readonly scratch = new Uint32Array(2);

  /** init_dmars for one unit: root table, queued invalidation, global flushes, translation on. */
  constructor(
    readonly release: Release,
    readonly hw: VtdHardware,
    private readonly pages: PageSource,
    private readonly trace: TraceRing,
    private readonly log: KernelLog,
  ) {
    if (hw.caps.qi) {
      hw.enableQueuedInvalidation(pages.alloc() * VTD_PAGE_SIZE);
      this.qiStatusPfn = pages.alloc();
    }
    this.rootPfn = pages.alloc();
    // iommu_set_root_entry: SRTP, then a global context-cache and a global IOTLB flush
    hw.setRootTable(this.rootPfn * VTD_PAGE_SIZE);
    this.flushContext(0, 0, 0, InvGranularity.Global);
    this.flushIotlb(0, 0n, 0, InvGranularity.Global);
    hw.enableTranslation(true);
  }

  get cachingMode(): boolean {
    return this.hw.caps.cm;
  }

  /** domain_attach_iommu: the lowest free domain id */
  allocDomainId(): number {
    for (let id = 0; id < this.hw.caps.ndoms; id++) {
      if (!this.domainIds.has(id)) {
        this.domainIds.add(id);
        return id;
      }
    }
    throw new Error(`${this.name}: no free domain id`);
  }

  // ------------------------------------------------------------------ invalidation

  /**
   * qi_submit_sync: descriptors, then a wait descriptor whose status write says "done" (the
   * queue writes are vtd/qi.ts writeQueue, shared with the hardware's own programmer).
   */
  private qiSubmitSync(descs: readonly QiDesc[]): void {
    const hw = this.hw;
    if (this.release === '6.1') {
      for (const d of descs) this.trace.emit('intel_iommu', 'qi_submit', fmtQiSubmit(qiTypeName(d.qw0), this.name, [d.qw0, d.qw1, d.qw2, d.qw3]));
    }
    const index = this.freeHead;
    const waitIndex = (index + descs.length) % QI_LENGTH;
    const statusAddr = this.qiStatusPfn * VTD_PAGE_SIZE + waitIndex * 4;
    this.freeHead = writeQueue(hw, index, [...descs, waitDescriptor(QI_DONE, statusAddr)]);
    hw.writeQueueTail(this.freeHead);
    this.hw.memory.readQword(statusAddr, this.scratch);
    if (this.scratch[0] !== QI_DONE) throw new Error(`${this.name}: invalidation queue error`);
  }

  /** iommu->flush.flush_context: qi_flush_context or __iommu_flush_context (vtd/qi.ts contextCommand) */
  flushContext(did: number, sid: number, fm: number, gran: InvGranularity): void {
    this.counters.contextFlushes++;
    if (this.hw.queuedInvalidationEnabled) {
      this.qiSubmitSync([ccDescriptor(gran, did, sid, fm)]);
      return;
    }
    this.hw.writeContextCommand(contextCommand(gran, did, sid, fm));
  }

  /**
   * iommu->flush.flush_iotlb(did, addr, size_order, type): qi_flush_iotlb (drain bits from cap,
   * IH dropped) or __iommu_flush_iotlb (vtd/qi.ts iotlbCommand: the register path keeps IH; only
   * DW is set).
   */
  flushIotlb(did: number, addr: bigint, sizeOrder: number, gran: InvGranularity): void {
    if (gran === InvGranularity.Page) this.counters.psi++;
    else if (gran === InvGranularity.Domain) this.counters.dsi++;
    else this.counters.global++;
    const caps = this.hw.caps;
    if (this.hw.queuedInvalidationEnabled) {
      this.qiSubmitSync([iotlbDescriptor(gran, gran === InvGranularity.Global ? 0 : did, { dr: caps.drd, dw: caps.dwd }, addr, false, sizeOrder)]);
      return;
    }
    // __iommu_flush_iotlb: write drain from cap, the register path never sets read drain
    const cmd = iotlbCommand(gran, did, caps.dwd);
    const iva = gran === InvGranularity.Page ? addr | BigInt(sizeOrder) : 0n;
    const back = this.hw.writeIotlbRegister(iva, cmd);
    // DMA_TLB_IAIG(val) == 0: the unit performed no invalidation
    if (((back >> DMA_TLB_IAIG_SHIFT) & 3n) === 0n) this.log.print(`DMAR: Flush IOTLB failed`);
  }

  /**
   * iommu_flush_iotlb_psi(did, pfn, pages, ih, map): one page-selective flush whose naturally
   * aligned 2^mask block covers [pfn, pfn + pages), falling back to domain-selective without PSI
   * or beyond MAMV. (Device-TLB flushes are not modelled: no device here has ATS.)
   */
  flushIotlbPsi(did: number, pfn: number, pages: number, ih: boolean): void {
    const aligned = roundupPowOfTwo(pages);
    let mask = Math.log2(aligned);
    if (pfn % aligned !== 0) {
      // shared bits of pfn and end_pfn above the aligned block: the first one sets the mask
      const end = pfn + pages - 1;
      mask = 64;
      for (let b = Math.log2(aligned); b < 64; b++) {
        if (Math.floor(pfn / 2 ** b) % 2 === Math.floor(end / 2 ** b) % 2) {
          mask = b;
          break;
        }
      }
    }
    const caps = this.hw.caps;
    if (!caps.psi || mask > caps.mamv) this.flushIotlb(did, 0n, 0, InvGranularity.Domain);
    else this.flushIotlb(did, pfnAddr(pfn) | (ih ? DMA_TLB_IH_NONLEAF : 0n), mask, InvGranularity.Page);
  }

  /** iommu_flush_write_buffer: only with cap RWBF */
  flushWriteBuffer(): void {
    if (!this.hw.caps.rwbf) return;
    this.counters.writeBufferFlushes++;
    this.hw.flushWriteBuffer();
  }

  /** __mapping_notify_one: under caching mode a PSI for the new range, else a write-buffer flush */
  mappingNotify(did: number, pfn: number, pages: number): void {
    if (this.cachingMode) {
      this.counters.mapFlushes++;
      this.flushIotlbPsi(did, pfn, pages, false);
    } else {
      this.flushWriteBuffer();
    }
  }

  /** the domain-selective flush of intel_flush_iotlb_all / iommu_flush_iova */
  flushDomain(did: number): void {
    this.flushIotlb(did, 0n, 0, InvGranularity.Domain);
  }

  // ------------------------------------------------------------------ context entries

  /** domain_context_mapping_one (legacy mode, second-level translation). */
  contextMapping(sid: number, did: number, pgdPfn: number, aw: number): void {
    writeContextEntry(this.hw.memory, this.rootPfn, sid, { present: true, fpd: false, tt: CONTEXT_TT_MULTI_LEVEL, slptPfn: pgdPfn, aw, did }, () => this.pages.alloc());
    if (this.cachingMode) {
      this.flushContext(0, sid, DMA_CCMD_MASK_NOBIT, InvGranularity.Page);
      this.flushIotlb(did, 0n, 0, InvGranularity.Domain);
    } else {
      this.flushWriteBuffer();
    }
  }

  // ------------------------------------------------------------------ faults

  /** dmar_fault: the interrupt handler, run after a device access faulted. */
  handleFaults(): void {
    const hw = this.hw;
    const status = hw.readFaultStatus();
    if (status !== 0 && this.faultLimit.allow(this.log.clock.nowNs, this.log)) {
      this.log.print(`DMAR: DRHD: handling fault status reg ${status.toString(16)}`);
    }
    if ((status & DMA_FSTS_PPF) === 0) return;
    let index = (status >>> 8) & 0xff;
    for (;;) {
      const ratelimited = !this.faultLimit.allow(this.log.clock.nowNs, this.log);
      const raw = hw.readFaultRecord(index);
      const rec = decodeFaultRecord(raw.low, raw.high);
      if (!rec.f) break;
      hw.clearFaultRecord(index);
      if (!ratelimited) this.log.print(`DMAR: ${dmarFaultLine(rec, this.release)}`);
      index = (index + 1) % hw.faultRecordCount;
    }
    hw.writeFaultStatus(DMA_FSTS_PFO | DMA_FSTS_PPF);
  }
}
