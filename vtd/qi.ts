/**
 * Invalidation: the execution of queued-invalidation descriptors (QEMU's vtd_process_inv_desc()
 * and the vtd_process_*_desc() it dispatches to) and of the invalidations both interfaces share
 * (the register path's IOTLB_REG and CCMD_REG writes reach the same code, as QEMU's
 * vtd_iotlb_flush() and vtd_context_cache_invalidate() do); the log of processed descriptors; and
 * the driver's side of the queue (writeQueue). The queue registers (IQA, IQH, IQT) and the fetch
 * loop are VtdHardware's; descriptor encodings and named field decoders are in qi-desc.ts, the
 * register commands' in inv-reg.ts.
 */
import type { TranslationJournal } from './journal.js';
import type { PhysMemory } from './memory.js';
import { decodeCcDescriptor, decodeIotlbDescriptor, decodeWaitDescriptor, qiDescType, type QiDesc } from './qi-desc.js';
import type { WalkParts } from './walk.js';
import { InvGranularity, QI_CC_TYPE, QI_DESC_SIZE, QI_DIOTLB_TYPE, QI_IEC_TYPE, QI_IOTLB_TYPE, QI_IWD_TYPE, QI_LENGTH } from './regs.js';

/** descriptors a QiLog keeps, at least */
const QI_LOG_KEPT = 4096;

/**
 * The descriptors a unit has processed, in order, counted from the first; the last QI_LOG_KEPT
 * (or more) are kept. Tests and the demo read what a call queued as a slice from the count
 * taken before it; a driver's long life does not keep every descriptor it ever queued.
 */
export class QiLog {
  private readonly kept: QiDesc[] = [];
  private dropped = 0;

  /** descriptors processed so far */
  get length(): number {
    return this.dropped + this.kept.length;
  }

  push(d: QiDesc): void {
    this.kept.push(d);
    if (this.kept.length >= 2 * QI_LOG_KEPT) {
      const n = this.kept.length - QI_LOG_KEPT;
      this.kept.splice(0, n);
      this.dropped += n;
    }
  }

  /** Descriptors [from, to) by their count; asking for ones no longer kept is an error. */
  slice(from = 0, to = this.length): QiDesc[] {
    if (from < this.dropped) throw new RangeError(`the queued-invalidation log keeps descriptors from ${this.dropped} on, not ${from}`);
    return this.kept.slice(from - this.dropped, to - this.dropped);
  }

  /** Descriptor i by its count, if still kept. */
  at(i: number): QiDesc | undefined {
    return i < this.dropped ? undefined : this.kept[i - this.dropped];
  }
}

/**
 * The queue writes of qi_submit_sync: each descriptor (qw0, qw1: legacy mode) into its 16-byte
 * slot from index head on, wrapping at QI_LENGTH. Returns the index after the last one, the
 * value software then writes to IQT_REG.
 */
export function writeQueue(hw: { readonly queueBase: number; readonly memory: PhysMemory }, head: number, descs: readonly QiDesc[]): number {
  let index = head;
  for (const d of descs) {
    const at = hw.queueBase + index * QI_DESC_SIZE;
    hw.memory.writeU64(at, d.qw0);
    hw.memory.writeU64(at + 8, d.qw1);
    index = (index + 1) % QI_LENGTH;
  }
  return index;
}

/**
 * What an invalidation acts on: the IOTLB and the context cache, the caching-mode coverage the
 * walk consults, and memory (for the wait descriptor's status write and the write sequence an
 * invalidation covers up to).
 */
export interface InvalidationTargets extends WalkParts {
  /** cap PSI and MAMV: a page-selective IOTLB invalidation beyond them fails */
  readonly psi: boolean;
  readonly mamv: number;
}

export class VtdInvalidation {
  /** Told of every IOTLB invalidation (VtdHardware.journal sets it). */
  journal: TranslationJournal | undefined;

  constructor(private readonly t: InvalidationTargets) {}

  /** vtd_process_inv_desc(): execute one descriptor; false for an invalid one (the queue then sets IQE). */
  processInvDesc(d: QiDesc): boolean {
    switch (qiDescType(d.qw0)) {
      case QI_CC_TYPE:
        return this.processContextCacheDesc(d);
      case QI_IOTLB_TYPE:
        return this.processIotlbDesc(d);
      case QI_DIOTLB_TYPE:
      case QI_IEC_TYPE:
        return true; // no device-TLBs (no ATS) and no interrupt-remapping cache are modelled
      case QI_IWD_TYPE:
        return this.processWaitDesc(d);
      default:
        return false;
    }
  }

  /** vtd_process_context_cache_desc() */
  private processContextCacheDesc(d: QiDesc): boolean {
    const cc = decodeCcDescriptor(d);
    return this.invalidateContext(cc.gran, cc.did, cc.sid, cc.fm);
  }

  /** vtd_process_iotlb_desc() */
  private processIotlbDesc(d: QiDesc): boolean {
    const inv = decodeIotlbDescriptor(d);
    return this.invalidateIotlb(inv.gran, inv.did, inv.pfn, inv.am);
  }

  /** vtd_process_wait_desc(): the status write, when SW asks for one (no interrupts are modelled). */
  private processWaitDesc(d: QiDesc): boolean {
    const w = decodeWaitDescriptor(d);
    if (w.sw) {
      const data = new Uint8Array(4);
      new DataView(data.buffer).setUint32(0, w.statusData, true);
      this.t.memory.write(w.statusAddr, data);
    }
    return true;
  }

  /**
   * vtd_iotlb_global_invalidate(), vtd_iotlb_domain_invalidate(), vtd_iotlb_page_invalidate():
   * false for a granularity the unit does not perform (no IAIG, or an invalid descriptor).
   */
  invalidateIotlb(gran: number, did: number, pfn: number, am: number): boolean {
    const t = this.t;
    const seq = t.memory.writeSeq;
    switch (gran) {
      case InvGranularity.Global:
        t.iotlb.invalidateAll();
        t.iotlbCoverage.recordGlobal(seq);
        this.journal?.invalidated(-1, 0, -1);
        t.counters.iotlbGlobal++;
        return true;
      case InvGranularity.Domain:
        t.iotlb.invalidateDomain(did);
        t.iotlbCoverage.recordDomain(did, seq);
        this.journal?.invalidated(did, 0, -1);
        t.counters.iotlbDomain++;
        return true;
      case InvGranularity.Page:
        // the kernel falls back to domain-selective when PSI is absent or AM > MAMV
        if (!t.psi || am > t.mamv) return false;
        t.iotlb.invalidatePages(did, pfn, am);
        t.iotlbCoverage.recordPages(did, pfn, am, seq);
        this.journal?.invalidated(did, pfn - (pfn % 2 ** am), 2 ** am);
        t.counters.iotlbPage++;
        return true;
      default:
        return false;
    }
  }

  /** vtd_context_global_invalidate(), its domain-selective form, vtd_context_device_invalidate(). */
  invalidateContext(gran: number, did: number, sid: number, fm: number): boolean {
    const t = this.t;
    const seq = t.memory.writeSeq;
    t.counters.contextInvalidations++;
    switch (gran) {
      case InvGranularity.Global:
        t.contextCache.invalidateAll();
        t.contextCoverage.recordGlobal(seq);
        return true;
      case InvGranularity.Domain:
        t.contextCache.invalidateDomain(did);
        t.contextCoverage.recordDomain(did, seq);
        return true;
      case InvGranularity.Page:
        t.contextCache.invalidateDevice(sid, fm);
        t.contextCoverage.recordDevice(sid, fm, seq);
        return true;
      default:
        return false;
    }
  }
}
