/**
 * Queued-invalidation descriptor encodings (128-bit descriptors, legacy mode), as the kernel's
 * dmar.c builds them (qi_flush_context, qi_flush_iotlb, the wait descriptor of qi_submit_sync)
 * and the hardware decodes them. Descriptors are carried as four qwords, as the kernel's
 * struct qi_desc and its qi_submit trace event carry them; in legacy mode qw2 and qw3 are 0.
 */
import type { PhysMemory } from './memory.js';
import {
  DMA_CCMD_DEVICE_INVL,
  DMA_CCMD_DOMAIN_INVL,
  DMA_CCMD_FM_SHIFT,
  DMA_CCMD_GLOBAL_INVL,
  DMA_CCMD_ICC,
  DMA_CCMD_SID_SHIFT,
  DMA_TLB_DID_SHIFT,
  DMA_TLB_DSI_FLUSH,
  DMA_TLB_GLOBAL_FLUSH,
  DMA_TLB_IVT,
  DMA_TLB_PSI_FLUSH,
  DMA_TLB_WRITE_DRAIN,
  InvGranularity,
  QI_CC_FM_SHIFT,
  QI_CC_SID_SHIFT,
  QI_CC_TYPE,
  QI_DEIOTLB_TYPE,
  QI_DESC_SIZE,
  QI_DID_SHIFT,
  QI_DIOTLB_TYPE,
  QI_EIOTLB_TYPE,
  QI_GRAN_SHIFT,
  QI_IEC_TYPE,
  QI_IOTLB_AM_MASK,
  QI_IOTLB_DR,
  QI_IOTLB_DW,
  QI_IOTLB_IH,
  QI_IOTLB_TYPE,
  QI_IWD_SW,
  QI_IWD_TYPE,
  QI_LENGTH,
  QI_PC_TYPE,
  QI_PGRP_RESP_TYPE,
} from './regs.js';

export interface QiDesc {
  qw0: bigint;
  qw1: bigint;
  qw2: bigint;
  qw3: bigint;
}

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

/** Context-cache invalidation: granularity global, domain (did) or device (sid, fm). */
export function ccDescriptor(gran: InvGranularity, did: number, sid: number, fm: number): QiDesc {
  const qw0 =
    BigInt(QI_CC_TYPE) |
    (BigInt(gran) << BigInt(QI_GRAN_SHIFT)) |
    (BigInt(did & 0xffff) << BigInt(QI_DID_SHIFT)) |
    (BigInt(sid & 0xffff) << BigInt(QI_CC_SID_SHIFT)) |
    (BigInt(fm & 3) << BigInt(QI_CC_FM_SHIFT));
  return { qw0, qw1: 0n, qw2: 0n, qw3: 0n };
}

/** IOTLB invalidation; addr is the byte address (low 12 bits ignored), am the address mask. */
export function iotlbDescriptor(
  gran: InvGranularity,
  did: number,
  drain: { dr: boolean; dw: boolean },
  addr: bigint,
  ih: boolean,
  am: number,
): QiDesc {
  const qw0 =
    BigInt(QI_IOTLB_TYPE) |
    (BigInt(gran) << BigInt(QI_GRAN_SHIFT)) |
    (drain.dw ? BigInt(QI_IOTLB_DW) : 0n) |
    (drain.dr ? BigInt(QI_IOTLB_DR) : 0n) |
    (BigInt(did & 0xffff) << BigInt(QI_DID_SHIFT));
  const qw1 = (addr & ~0xfffn) | (ih ? BigInt(QI_IOTLB_IH) : 0n) | BigInt(am & QI_IOTLB_AM_MASK);
  return { qw0, qw1, qw2: 0n, qw3: 0n };
}

/** Invalidation-wait descriptor with status write: data is written to statusAddr on completion. */
export function waitDescriptor(statusData: number, statusAddr: number): QiDesc {
  const qw0 = BigInt(QI_IWD_TYPE) | BigInt(QI_IWD_SW) | (BigInt(statusData >>> 0) << 32n);
  return { qw0, qw1: BigInt(statusAddr) & ~3n, qw2: 0n, qw3: 0n };
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
 * IOTLB_REG value of a register-based IOTLB invalidation, as __iommu_flush_iotlb builds it:
 * DMA_TLB_GLOBAL_FLUSH, or DMA_TLB_DSI_FLUSH / DMA_TLB_PSI_FLUSH with DMA_TLB_DID(did); always
 * DMA_TLB_IVT, and DMA_TLB_WRITE_DRAIN when dw (cap_write_drain). Read drain is never set (the
 * kernel has it under #if 0). For page-selective flushes the address, IH and AM go to IVA_REG.
 */
export function iotlbCommand(gran: InvGranularity, did: number, dw: boolean): bigint {
  let val: bigint;
  switch (gran) {
    case InvGranularity.Global:
      val = DMA_TLB_GLOBAL_FLUSH | DMA_TLB_IVT;
      break;
    case InvGranularity.Domain:
      val = DMA_TLB_DSI_FLUSH | DMA_TLB_IVT | (BigInt(did & 0xffff) << DMA_TLB_DID_SHIFT);
      break;
    case InvGranularity.Page:
      val = DMA_TLB_PSI_FLUSH | DMA_TLB_IVT | (BigInt(did & 0xffff) << DMA_TLB_DID_SHIFT);
      break;
    default:
      throw new Error(`IOTLB flush granularity ${gran as number}`); // BUG()
  }
  return dw ? val | DMA_TLB_WRITE_DRAIN : val;
}

/**
 * CCMD_REG value of a register-based context-cache invalidation, as __iommu_flush_context builds
 * it: DMA_CCMD_GLOBAL_INVL; DMA_CCMD_DOMAIN_INVL with DMA_CCMD_DID(did); DMA_CCMD_DEVICE_INVL with
 * DMA_CCMD_DID(did), DMA_CCMD_SID(sid) and DMA_CCMD_FM(fm); always DMA_CCMD_ICC.
 */
export function contextCommand(gran: InvGranularity, did: number, sid: number, fm: number): bigint {
  let val: bigint;
  switch (gran) {
    case InvGranularity.Global:
      val = DMA_CCMD_GLOBAL_INVL;
      break;
    case InvGranularity.Domain:
      val = DMA_CCMD_DOMAIN_INVL | BigInt(did & 0xffff);
      break;
    case InvGranularity.Page:
      val =
        DMA_CCMD_DEVICE_INVL |
        BigInt(did & 0xffff) |
        (BigInt(sid & 0xffff) << DMA_CCMD_SID_SHIFT) |
        (BigInt(fm & 3) << DMA_CCMD_FM_SHIFT);
      break;
    default:
      throw new Error(`context-cache flush granularity ${gran as number}`); // BUG()
  }
  return val | DMA_CCMD_ICC;
}

/** The type names the intel_iommu:qi_submit event prints for (qw0 & 0xf). */
export function qiTypeName(qw0: bigint): string {
  const t = Number(qw0 & 0xfn);
  switch (t) {
    case QI_CC_TYPE:
      return 'cc_inv';
    case QI_IOTLB_TYPE:
      return 'iotlb_inv';
    case QI_DIOTLB_TYPE:
      return 'dev_tlb_inv';
    case QI_IEC_TYPE:
      return 'iec_inv';
    case QI_IWD_TYPE:
      return 'inv_wait';
    case QI_EIOTLB_TYPE:
      return 'p_iotlb_inv';
    case QI_PC_TYPE:
      return 'pc_inv';
    case QI_DEIOTLB_TYPE:
      return 'p_dev_tlb_inv';
    case QI_PGRP_RESP_TYPE:
      return 'page_grp_resp';
    default:
      return `0x${t.toString(16)}`;
  }
}

/** Decoded fields of an IOTLB descriptor (for tests and reports). */
export function decodeIotlbDescriptor(d: QiDesc): {
  gran: number;
  did: number;
  dr: boolean;
  dw: boolean;
  pfn: number;
  ih: boolean;
  am: number;
} {
  const lo0 = Number(d.qw0 & 0xffffffffn);
  return {
    gran: (lo0 >>> QI_GRAN_SHIFT) & 3,
    did: (lo0 >>> QI_DID_SHIFT) & 0xffff,
    dr: (lo0 & QI_IOTLB_DR) !== 0,
    dw: (lo0 & QI_IOTLB_DW) !== 0,
    pfn: Number(d.qw1 >> 12n),
    ih: (Number(d.qw1 & 0xffn) & QI_IOTLB_IH) !== 0,
    am: Number(d.qw1 & BigInt(QI_IOTLB_AM_MASK)),
  };
}
