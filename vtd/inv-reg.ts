/**
 * Register-based invalidation: the IOTLB_REG / IVA_REG and CCMD_REG values, as the kernel's
 * __iommu_flush_iotlb and __iommu_flush_context build them, and their decoding into named fields
 * as the hardware reads them (QEMU's vtd_iotlb_flush() and vtd_context_cache_invalidate(), with
 * the VTD_TLB_* / VTD_IVA_* / VTD_CCMD_* accessors of intel_iommu_internal.h).
 */
import {
  DMA_CCMD_CIRG_SHIFT,
  DMA_CCMD_DEVICE_INVL,
  DMA_CCMD_DOMAIN_INVL,
  DMA_CCMD_FM_SHIFT,
  DMA_CCMD_GLOBAL_INVL,
  DMA_CCMD_ICC,
  DMA_CCMD_SID_SHIFT,
  DMA_TLB_DID_SHIFT,
  DMA_TLB_DSI_FLUSH,
  DMA_TLB_GLOBAL_FLUSH,
  DMA_TLB_IH_NONLEAF,
  DMA_TLB_IIRG_SHIFT,
  DMA_TLB_IVT,
  DMA_TLB_PSI_FLUSH,
  DMA_TLB_WRITE_DRAIN,
  InvGranularity,
  QI_IOTLB_AM_MASK,
  vtdPfn,
} from './regs.js';

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

/** The fields of an IOTLB_REG write. */
export interface IotlbCommandFields {
  /** IVT, bit 63: a write without it starts nothing */
  ivt: boolean;
  /** IIRG, bits 61:60 (VTD_TLB_FLUSH_GRANU_MASK): 1 global, 2 domain, 3 page */
  gran: number;
  /** VTD_TLB_DID, bits 47:32 */
  did: number;
}

export function decodeIotlbCommand(cmd: bigint): IotlbCommandFields {
  return {
    ivt: (cmd & DMA_TLB_IVT) !== 0n,
    gran: Number((cmd >> DMA_TLB_IIRG_SHIFT) & 3n),
    did: Number((cmd >> DMA_TLB_DID_SHIFT) & 0xffffn),
  };
}

/** The fields of IVA_REG (the address of a page-selective register flush). */
export interface IvaFields {
  /** VTD_IVA_ADDR >> 12: bits 63:12 as a pfn */
  pfn: number;
  /** IH, bit 6 (DMA_TLB_IH_NONLEAF) */
  ih: boolean;
  /** VTD_IVA_AM, bits 5:0 */
  am: number;
}

export function decodeIva(iva: bigint): IvaFields {
  return {
    pfn: vtdPfn(iva),
    ih: (iva & DMA_TLB_IH_NONLEAF) !== 0n,
    am: Number(iva & BigInt(QI_IOTLB_AM_MASK)),
  };
}

/** The fields of a CCMD_REG write. */
export interface ContextCommandFields {
  /** ICC, bit 63: a write without it starts nothing */
  icc: boolean;
  /** CIRG, bits 62:61: 1 global, 2 domain, 3 device */
  gran: number;
  /** VTD_CCMD_FM, bits 33:32 */
  fm: number;
  /** VTD_CCMD_SID, bits 31:16 */
  sid: number;
  /** VTD_CCMD_DID, bits 15:0 */
  did: number;
}

export function decodeContextCommand(cmd: bigint): ContextCommandFields {
  return {
    icc: (cmd & DMA_CCMD_ICC) !== 0n,
    gran: Number((cmd >> DMA_CCMD_CIRG_SHIFT) & 3n),
    fm: Number((cmd >> DMA_CCMD_FM_SHIFT) & 3n),
    sid: Number((cmd >> DMA_CCMD_SID_SHIFT) & 0xffffn),
    did: Number(cmd & 0xffffn),
  };
}
