/**
 * Queued-invalidation descriptors (128-bit, legacy mode): their encodings, as the kernel's dmar.c
 * builds them (qi_flush_context, qi_flush_iotlb, the wait descriptor of qi_submit_sync), and their
 * decoding into named fields, as the hardware reads them (QEMU's VTD_INV_DESC_* accessors of
 * hw/i386/intel_iommu_internal.h). Descriptors are carried as four qwords, as the kernel's struct
 * qi_desc and its qi_submit trace event carry them; in legacy mode qw2 and qw3 are 0.
 */
import {
  InvGranularity,
  QI_CC_FM_SHIFT,
  QI_CC_SID_SHIFT,
  QI_CC_TYPE,
  QI_DEIOTLB_TYPE,
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
  QI_IWD_FN,
  QI_IWD_IF,
  QI_IWD_SW,
  QI_IWD_TYPE,
  QI_PC_TYPE,
  QI_PGRP_RESP_TYPE,
  vtdHigh32,
  vtdLow32,
  vtdPageAddr,
  vtdPfn,
} from './regs.js';

export interface QiDesc {
  qw0: bigint;
  qw1: bigint;
  qw2: bigint;
  qw3: bigint;
}

// ---------------------------------------------------------------- encoding (the driver's side)

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
  const qw1 = vtdPageAddr(addr) | (ih ? BigInt(QI_IOTLB_IH) : 0n) | BigInt(am & QI_IOTLB_AM_MASK);
  return { qw0, qw1, qw2: 0n, qw3: 0n };
}

/** Invalidation-wait descriptor with status write: data is written to statusAddr on completion. */
export function waitDescriptor(statusData: number, statusAddr: number): QiDesc {
  const qw0 = BigInt(QI_IWD_TYPE) | BigInt(QI_IWD_SW) | (BigInt(statusData >>> 0) << 32n);
  return { qw0, qw1: BigInt(statusAddr) & ~3n, qw2: 0n, qw3: 0n };
}

// ---------------------------------------------------------------- decoding (the hardware's side)

/** VTD_INV_DESC_TYPE: the descriptor type, bits 3:0 of qw0. */
export function qiDescType(qw0: bigint): number {
  return Number(qw0 & 0xfn);
}

/** The fields of a context-cache invalidate descriptor (VT-d 6.5.2.1). */
export interface CcDescFields {
  /** VTD_INV_DESC_CC_G, bits 5:4: 1 global, 2 domain-selective, 3 device-selective */
  gran: number;
  /** VTD_INV_DESC_CC_DID, bits 31:16 */
  did: number;
  /** VTD_INV_DESC_CC_SID, bits 47:32 */
  sid: number;
  /** VTD_INV_DESC_CC_FM, bits 49:48: function mask of a device-selective invalidation */
  fm: number;
}

export function decodeCcDescriptor(d: QiDesc): CcDescFields {
  const lo0 = vtdLow32(d.qw0);
  const hi0 = vtdHigh32(d.qw0);
  return {
    gran: (lo0 >>> QI_GRAN_SHIFT) & 3,
    did: (lo0 >>> QI_DID_SHIFT) & 0xffff,
    sid: (hi0 >>> (QI_CC_SID_SHIFT - 32)) & 0xffff,
    fm: (hi0 >>> (QI_CC_FM_SHIFT - 32)) & 3,
  };
}

/** The fields of an IOTLB invalidate descriptor (VT-d 6.5.2.3). */
export interface IotlbDescFields {
  /** VTD_INV_DESC_IOTLB_G, bits 5:4: 1 global, 2 domain-selective, 3 page-selective */
  gran: number;
  /** VTD_INV_DESC_IOTLB_DID, bits 31:16 */
  did: number;
  /** DR (drain reads), bit 7 */
  dr: boolean;
  /** DW (drain writes), bit 6 */
  dw: boolean;
  /** VTD_INV_DESC_IOTLB_ADDR >> 12: qw1 bits 63:12 as a pfn */
  pfn: number;
  /** IH (invalidation hint: only leaf entries changed), qw1 bit 6 */
  ih: boolean;
  /** VTD_INV_DESC_IOTLB_AM, qw1 bits 5:0: 2^am pages, naturally aligned */
  am: number;
}

export function decodeIotlbDescriptor(d: QiDesc): IotlbDescFields {
  const lo0 = vtdLow32(d.qw0);
  const lo1 = vtdLow32(d.qw1);
  return {
    gran: (lo0 >>> QI_GRAN_SHIFT) & 3,
    did: (lo0 >>> QI_DID_SHIFT) & 0xffff,
    dr: (lo0 & QI_IOTLB_DR) !== 0,
    dw: (lo0 & QI_IOTLB_DW) !== 0,
    pfn: vtdPfn(d.qw1),
    ih: (lo1 & QI_IOTLB_IH) !== 0,
    am: lo1 & QI_IOTLB_AM_MASK,
  };
}

/** The fields of an invalidation wait descriptor (VT-d 6.5.2.8). */
export interface WaitDescFields {
  /** VTD_INV_DESC_WAIT_SW, bit 5: write statusData to statusAddr on completion */
  sw: boolean;
  /** VTD_INV_DESC_WAIT_IF, bit 4: raise the invalidation-completion interrupt */
  iflag: boolean;
  /** VTD_INV_DESC_WAIT_FN, bit 6: fence */
  fn: boolean;
  /** bits 63:32 (VTD_INV_DESC_WAIT_DATA_SHIFT) */
  statusData: number;
  /** qw1 bits 63:2 */
  statusAddr: number;
}

export function decodeWaitDescriptor(d: QiDesc): WaitDescFields {
  const lo0 = vtdLow32(d.qw0);
  return {
    sw: (lo0 & QI_IWD_SW) !== 0,
    iflag: (lo0 & QI_IWD_IF) !== 0,
    fn: (lo0 & QI_IWD_FN) !== 0,
    statusData: vtdHigh32(d.qw0),
    statusAddr: Number(d.qw1 & ~3n),
  };
}

/** The type names the intel_iommu:qi_submit event prints for (qw0 & 0xf). */
export function qiTypeName(qw0: bigint): string {
  const t = qiDescType(qw0);
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
