/**
 * VT-d hardware constants, in one place, named as the VT-d specification, QEMU's
 * hw/i386/intel_iommu_internal.h and the kernel's include/linux/intel-iommu.h
 * (drivers/iommu/intel/iommu.h in 6.1) name them.
 */

export const VTD_PAGE_SHIFT = 12;
export const VTD_PAGE_SIZE = 1 << VTD_PAGE_SHIFT;
export const VTD_PAGE_MASK_LOW = VTD_PAGE_SIZE - 1;

// ---- the BigInt/number edge of the unit: 64-bit register and descriptor values are bigints,
// the walk works on page frame numbers as plain numbers (vtd/ does not import kernel/bits.ts) ----
const PAGE_SHIFT_N = BigInt(VTD_PAGE_SHIFT);
const PAGE_MASK_LOW_N = BigInt(VTD_PAGE_MASK_LOW);

/** addr >> VTD_PAGE_SHIFT as a number: exact for any 64-bit address (at most 2^52). */
export function vtdPfn(addr: bigint): number {
  return Number(addr >> PAGE_SHIFT_N);
}

/** addr & (VTD_PAGE_SIZE - 1): the byte offset within the 4 KiB page. */
export function vtdPageOffset(addr: bigint): number {
  return Number(addr & PAGE_MASK_LOW_N);
}

/** addr & VTD_PAGE_MASK: the address of the 4 KiB page holding addr (QEMU's VTD_PAGE_MASK_4K). */
export function vtdPageAddr(addr: bigint): bigint {
  return addr & ~PAGE_MASK_LOW_N;
}

/** pfn << VTD_PAGE_SHIFT as a 64-bit address. */
export function vtdPfnAddr(pfn: number): bigint {
  return BigInt(pfn) << PAGE_SHIFT_N;
}

/** Bits 31:0 of a 64-bit value, as a number. */
export function vtdLow32(v: bigint): number {
  return Number(v & 0xffffffffn);
}

/** Bits 63:32 of a 64-bit value, as a number. */
export function vtdHigh32(v: bigint): number {
  return Number((v >> 32n) & 0xffffffffn);
}

/**
 * The first pfn whose address has a bit set in ~VTD_HAW_MASK(haw): a table pointer or leaf
 * address at or above it names memory the unit cannot reach (a reserved-field fault).
 */
export function vtdHawPfnLimit(haw: number): number {
  return 2 ** (haw - VTD_PAGE_SHIFT);
}

/** The interrupt (IOAPIC/MSI) address window no DMA may use: IOAPIC_RANGE_START/END of intel-iommu. */
export const IOAPIC_RANGE_START = 0xfee0_0000;
export const IOAPIC_RANGE_END = 0xfeef_ffff;
/** Each page-table level indexes 9 bits of the pfn (LEVEL_STRIDE in the kernel). */
export const LEVEL_STRIDE = 9;
export const LEVEL_MASK = (1 << LEVEL_STRIDE) - 1;
/** 512 eight-byte entries per table page. */
export const PTES_PER_TABLE = 1 << LEVEL_STRIDE;

// ---- second-level PTE bits (DMA_PTE_* in the kernel, VTD_SL_* in QEMU) ----
export const DMA_PTE_READ = 1 << 0;
export const DMA_PTE_WRITE = 1 << 1;
/** PS: a leaf at level 2 (2 MiB) or 3 (1 GiB). */
export const DMA_PTE_LARGE_PAGE = 1 << 7;
export const DMA_PTE_SNP = 1 << 11;
/** DMA_FL_PTE_PRESENT: bit 0, the same bit as second-level R; both releases' __domain_mapping set it on every leaf (kernel-semantics 9.5.2, 10.0 #1) */
export const DMA_FL_PTE_PRESENT = 1 << 0;
/** TM (transient mapping) sits at bit 62, i.e. bit 30 of the high dword. */
export const DMA_PTE_TM_HI = 1 << 30;

// ---- root / context entries, legacy (non-scalable) mode ----
export const ROOT_ENTRY_PRESENT = 1;
export const CONTEXT_PRESENT = 1;
export const CONTEXT_FPD = 1 << 1;
/**
 * Reserved bits of a legacy-mode root entry, by dword of the 128-bit entry (the walk reads
 * entries as dwords). QEMU's VTD_ROOT_ENTRY_RSVD(aw) = 0xffe | ~VTD_HAW_MASK(aw) on the low qword:
 * bits 11:1 (DW0) and bits 63:52 (DW1); its address bits from HAW up to 51 are the pfn check
 * against vtdHawPfnLimit. The high qword (QEMU's re.rsvd) is reserved as a whole (DW2, DW3).
 */
export const VTD_ROOT_ENTRY_RSVD_DW0 = 0x0000_0ffe;
export const VTD_ROOT_ENTRY_RSVD_DW1 = 0xfff0_0000;
export const VTD_ROOT_ENTRY_RSVD_DW2 = 0xffff_ffff;
export const VTD_ROOT_ENTRY_RSVD_DW3 = 0xffff_ffff;
/**
 * Reserved bits of a legacy-mode context entry, by dword. VTD_CONTEXT_ENTRY_RSVD_LO(aw) =
 * 0xff0 | ~VTD_HAW_MASK(aw): bits 11:4 (DW0), the address bits at or above HAW being the pfn
 * check against vtdHawPfnLimit (bits 63:52 of the low qword are not checked by this model).
 * VTD_CONTEXT_ENTRY_RSVD_HI = 0xffffffffff000080: bit 7 and bits 31:24 of the high qword (DW2)
 * and its whole top dword (DW3).
 */
export const VTD_CONTEXT_ENTRY_RSVD_LO_DW0 = 0x0000_0ff0;
export const VTD_CONTEXT_ENTRY_RSVD_HI_DW2 = 0xff00_0080;
export const VTD_CONTEXT_ENTRY_RSVD_HI_DW3 = 0xffff_ffff;
/** Translation types (bits 3:2 of the context entry's low qword). */
export const CONTEXT_TT_MULTI_LEVEL = 0;
export const CONTEXT_TT_DEV_IOTLB = 1;
export const CONTEXT_TT_PASS_THROUGH = 2;

// ---- capability register bit positions (cap_* macros) ----
export const CAP_ND_SHIFT = 0; // bits 2:0, number of domains = 2^(4 + 2*ND)
export const CAP_AFL_BIT = 3;
export const CAP_RWBF_BIT = 4;
export const CAP_PLMR_BIT = 5;
export const CAP_PHMR_BIT = 6;
export const CAP_CM_BIT = 7;
export const CAP_SAGAW_SHIFT = 8; // bits 12:8
export const CAP_MGAW_SHIFT = 16; // bits 21:16, width - 1
export const CAP_ZLR_BIT = 22;
export const CAP_FRO_SHIFT = 24; // bits 33:24, fault-record offset / 16
export const CAP_SLLPS_SHIFT = 34; // bits 37:34: bit 34 = 2 MiB, bit 35 = 1 GiB
export const CAP_PSI_BIT = 39;
export const CAP_NFR_SHIFT = 40; // bits 47:40, number of fault records - 1
export const CAP_MAMV_SHIFT = 48; // bits 53:48
export const CAP_DWD_BIT = 54;
export const CAP_DRD_BIT = 55;

// ---- extended capability register ----
export const ECAP_C_BIT = 0;
export const ECAP_QI_BIT = 1;
export const ECAP_DT_BIT = 2;
export const ECAP_IR_BIT = 3;
export const ECAP_PT_BIT = 6;
export const ECAP_SC_BIT = 7;
export const ECAP_IRO_SHIFT = 8; // bits 17:8, IOTLB register offset / 16
export const ECAP_MHMV_SHIFT = 20;

// ---- fault status register (DMAR_FSTS_REG) ----
export const DMA_FSTS_PFO = 1 << 0;
export const DMA_FSTS_PPF = 1 << 1;
export const DMA_FSTS_IQE = 1 << 4;
export const DMA_FSTS_ICE = 1 << 5;
export const DMA_FSTS_ITE = 1 << 6;

// ---- register-based invalidation (DMA_TLB_*, DMA_CCMD_*) ----
export const DMA_TLB_IVT = 1n << 63n;
/** IIRG, bits 61:60 (DMA_TLB_FLUSH_GRANU_OFFSET in the kernel) */
export const DMA_TLB_IIRG_SHIFT = 60n;
/** IAIG, bits 58:57, read back as DMA_TLB_IAIG(val) = (val >> 57) & 3 */
export const DMA_TLB_IAIG_SHIFT = 57n;
/** IIRG values: DMA_TLB_GLOBAL_FLUSH / DSI / PSI (VTD_TLB_GLOBAL_FLUSH / DSI / PSI in QEMU) */
export const DMA_TLB_GLOBAL_FLUSH = 1n << DMA_TLB_IIRG_SHIFT;
export const DMA_TLB_DSI_FLUSH = 2n << DMA_TLB_IIRG_SHIFT;
export const DMA_TLB_PSI_FLUSH = 3n << DMA_TLB_IIRG_SHIFT;
export const DMA_TLB_READ_DRAIN = 1n << 49n;
export const DMA_TLB_WRITE_DRAIN = 1n << 48n;
export const DMA_TLB_DID_SHIFT = 32n;
/** IVA_REG's IH (invalidation hint) bit: DMA_TLB_IH_NONLEAF */
export const DMA_TLB_IH_NONLEAF = 1n << 6n;
export const DMA_CCMD_ICC = 1n << 63n;
/** CIRG, bits 62:61 (DMA_CCMD_INVL_GRANU_OFFSET in the kernel) */
export const DMA_CCMD_CIRG_SHIFT = 61n;
export const DMA_CCMD_CAIG_SHIFT = 59n; // bits 60:59
/** CIRG values: DMA_CCMD_GLOBAL_INVL / DOMAIN_INVL / DEVICE_INVL (VTD_CCMD_* in QEMU) */
export const DMA_CCMD_GLOBAL_INVL = 1n << DMA_CCMD_CIRG_SHIFT;
export const DMA_CCMD_DOMAIN_INVL = 2n << DMA_CCMD_CIRG_SHIFT;
export const DMA_CCMD_DEVICE_INVL = 3n << DMA_CCMD_CIRG_SHIFT;
export const DMA_CCMD_FM_SHIFT = 32n;
export const DMA_CCMD_SID_SHIFT = 16n;
/** Function mask of a device-selective flush: no function bits masked (DMA_CCMD_MASK_NOBIT). */
export const DMA_CCMD_MASK_NOBIT = 0;

/** Invalidation granularities, shared by the register and queued interfaces. */
export const enum InvGranularity {
  Global = 1,
  Domain = 2,
  /** page-selective for the IOTLB, device-selective for the context cache */
  Page = 3,
}

// ---- queued-invalidation descriptors (QI_* in the kernel, VTD_INV_DESC_* in QEMU) ----
export const QI_CC_TYPE = 0x1;
export const QI_IOTLB_TYPE = 0x2;
export const QI_DIOTLB_TYPE = 0x3;
export const QI_IEC_TYPE = 0x4;
export const QI_IWD_TYPE = 0x5;
export const QI_EIOTLB_TYPE = 0x6;
export const QI_PC_TYPE = 0x7;
export const QI_DEIOTLB_TYPE = 0x8;
export const QI_PGRP_RESP_TYPE = 0x9;
/** Granularity field (bits 5:4) of context-cache and IOTLB descriptors. */
export const QI_GRAN_SHIFT = 4;
export const QI_IOTLB_DW = 1 << 6;
export const QI_IOTLB_DR = 1 << 7;
export const QI_DID_SHIFT = 16; // bits 31:16
export const QI_CC_SID_SHIFT = 32; // bits 47:32 (use BigInt or split halves)
export const QI_CC_FM_SHIFT = 48; // bits 49:48
/** IOTLB descriptor qw1: AM in bits 5:0, IH in bit 6, address in 63:12. */
export const QI_IOTLB_IH = 1 << 6;
export const QI_IOTLB_AM_MASK = 0x3f;
/** Wait descriptor: IF bit 4, SW bit 5, FN bit 6, status data in 63:32. */
export const QI_IWD_IF = 1 << 4;
export const QI_IWD_SW = 1 << 5;
export const QI_IWD_FN = 1 << 6;
/** Queue length in descriptors (the kernel allocates one 4 KiB page of 16-byte descriptors). */
export const QI_LENGTH = 256;
export const QI_DESC_SIZE = 16;

// ---- fault reasons (VTD_FR_* in QEMU; dmar.c's dma_remap_fault_reasons[] text) ----
export const VTD_FR_RESERVED = 0x0;
export const VTD_FR_ROOT_ENTRY_P = 0x1;
export const VTD_FR_CONTEXT_ENTRY_P = 0x2;
export const VTD_FR_CONTEXT_ENTRY_INV = 0x3;
export const VTD_FR_ADDR_BEYOND_MGAW = 0x4;
export const VTD_FR_WRITE = 0x5;
export const VTD_FR_READ = 0x6;
export const VTD_FR_PAGING_ENTRY_INV = 0x7;
export const VTD_FR_ROOT_TABLE_INV = 0x8;
export const VTD_FR_CONTEXT_TABLE_INV = 0x9;
export const VTD_FR_ROOT_ENTRY_RSVD = 0xa;
export const VTD_FR_CONTEXT_ENTRY_RSVD = 0xb;
export const VTD_FR_PAGING_ENTRY_RSVD = 0xc;
export const VTD_FR_CONTEXT_ENTRY_TT = 0xd;

// ---- page-table level arithmetic (drivers/iommu/intel/iommu.c), on 4 KiB pfns ----

/** 4 KiB pages one entry covers, by level (index 0 unused; 6 for 57-bit five-level tables and MGAW 64). */
const LEVEL_PAGES: readonly number[] = [0, 1, 2 ** 9, 2 ** 18, 2 ** 27, 2 ** 36, 2 ** 45, 2 ** 54];

/** lvl_to_nr_pages: 4 KiB pages one entry at level covers (level_size in pfns is the same); a table, not a pow() call, on the walk's hot path. */
export function lvlToNrPages(level: number): number {
  return LEVEL_PAGES[level] ?? 2 ** (LEVEL_STRIDE * (level - 1));
}

/**
 * x mod m for a non-negative integer x (exact below 2^53) and a power of two m, by a division
 * and a floor: exact (dividing by a power of two is), and without the fmod call that % makes
 * of a number above 2^31 -- page numbers of 48- and 57-bit IOVAs are.
 */
export function modPow2(x: number, m: number): number {
  return x - Math.floor(x / m) * m;
}

/** pfn_level_offset: the index of pfn's entry in its level's table. */
export function pfnLevelOffset(pfn: number, level: number): number {
  return modPow2(Math.floor(pfn / lvlToNrPages(level)), PTES_PER_TABLE);
}

/** pfn & level_mask(level): the first pfn of the level-sized page containing pfn. */
export function levelBase(pfn: number, level: number): number {
  return pfn - modPow2(pfn, lvlToNrPages(level));
}

/** agaw → address width: 30 + 9 * agaw (agaw_to_width); levels = agaw + 2 (agaw_to_level). */
export function agawToWidth(agaw: number): number {
  return Math.min(30 + agaw * LEVEL_STRIDE, 64);
}
export function agawToLevel(agaw: number): number {
  return agaw + 2;
}
export function widthToAgaw(width: number): number {
  return Math.ceil((width - 30) / LEVEL_STRIDE);
}
