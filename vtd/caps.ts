/**
 * Per-instance capabilities and the cap/ecap register values the kernel reads.
 *
 * The defaults are QEMU 7.2's intel-iommu as the real-kernel recordings ran it: legacy mode,
 * aw-bits 39, no caching mode, no ZLR, 2 MiB and 1 GiB superpages, PSI with MAMV 18, both drain
 * bits, 65536 domain ids, one fault record at offset 0x220, queued invalidation, no snoop control:
 * cap 0xd2008c22260206, ecap 0xf00f4a (shared/oracle/README.md).
 */
import {
  CAP_CM_BIT,
  CAP_DRD_BIT,
  CAP_DWD_BIT,
  CAP_FRO_SHIFT,
  CAP_MAMV_SHIFT,
  CAP_MGAW_SHIFT,
  CAP_ND_SHIFT,
  CAP_NFR_SHIFT,
  CAP_PSI_BIT,
  CAP_RWBF_BIT,
  CAP_SAGAW_SHIFT,
  CAP_SLLPS_SHIFT,
  CAP_ZLR_BIT,
  ECAP_IR_BIT,
  ECAP_IRO_SHIFT,
  ECAP_MHMV_SHIFT,
  ECAP_PT_BIT,
  ECAP_QI_BIT,
  ECAP_SC_BIT,
  widthToAgaw,
} from './regs.js';

export type Agaw = 39 | 48 | 57;
export type Superpage = '2M' | '1G';

export interface VtdConfig {
  /** address width in bits: 39, 48 or 57 (3, 4 or 5 levels) */
  readonly agaw: Agaw;
  readonly cachingMode: boolean;
  readonly zlr: boolean;
  readonly superpages: readonly Superpage[];
  /** page-selective invalidation supported (cap PSI) */
  readonly psi: boolean;
  /** maximum address mask value for PSI (cap MAMV) */
  readonly mamv: number;
  /** snoop control (ecap SC) */
  readonly snoopControl: boolean;
  /** cap ND: number of domain ids = 2^(4 + 2 * nd) */
  readonly nd: number;
  /** queued invalidation (ecap QI); without it the kernel uses the register interface */
  readonly qi: boolean;
  /** write-buffer flushing required (cap RWBF) */
  readonly rwbf: boolean;
  /** number of fault-recording registers (cap NFR + 1) */
  readonly faultRecords: number;
  /** IOTLB capacity in entries (the replacement is FIFO, so the order is deterministic) */
  readonly iotlbEntries: number;
  /** context-cache capacity in entries */
  readonly contextCacheEntries: number;
}

export const QEMU_DEFAULT_CONFIG: VtdConfig = {
  agaw: 39,
  cachingMode: false,
  zlr: false,
  superpages: ['2M', '1G'],
  psi: true,
  mamv: 18,
  snoopControl: false,
  nd: 6,
  qi: true,
  rwbf: false,
  faultRecords: 1,
  iotlbEntries: 1024,
  contextCacheEntries: 256,
};

export function vtdConfig(overrides: Partial<VtdConfig> = {}): VtdConfig {
  return { ...QEMU_DEFAULT_CONFIG, ...overrides };
}

/** QEMU puts the fault-recording registers at 0x220 (FRO = 0x22 units of 16 bytes). */
const QEMU_FRO = 0x22;
/** QEMU's IOTLB registers at 0xf0 (IRO = 0xf units of 16 bytes). */
const QEMU_IRO = 0xf;

function bit(b: number): bigint {
  return 1n << BigInt(b);
}

/** The capability register as QEMU 7.2 reports it for this configuration. */
export function capRegister(c: VtdConfig): bigint {
  // QEMU advertises every supported width up to the configured one (39: bit 1; 48: bits 1-2).
  const agaw = widthToAgaw(c.agaw);
  let sagaw = 0n;
  for (let a = 1; a <= agaw; a++) sagaw |= bit(a);
  let sllps = 0n;
  if (c.superpages.includes('2M')) sllps |= 1n;
  if (c.superpages.includes('1G')) sllps |= 2n;
  let cap = BigInt(c.nd & 7) << BigInt(CAP_ND_SHIFT);
  if (c.rwbf) cap |= bit(CAP_RWBF_BIT);
  if (c.cachingMode) cap |= bit(CAP_CM_BIT);
  cap |= sagaw << BigInt(CAP_SAGAW_SHIFT);
  cap |= BigInt(c.agaw - 1) << BigInt(CAP_MGAW_SHIFT);
  if (c.zlr) cap |= bit(CAP_ZLR_BIT);
  cap |= BigInt(QEMU_FRO) << BigInt(CAP_FRO_SHIFT);
  cap |= sllps << BigInt(CAP_SLLPS_SHIFT);
  if (c.psi) cap |= bit(CAP_PSI_BIT);
  cap |= BigInt(c.faultRecords - 1) << BigInt(CAP_NFR_SHIFT);
  cap |= BigInt(c.mamv & 0x3f) << BigInt(CAP_MAMV_SHIFT);
  cap |= bit(CAP_DWD_BIT) | bit(CAP_DRD_BIT);
  return cap;
}

/** The extended capability register as QEMU 7.2 reports it (legacy mode, IR on, no x2APIC). */
export function ecapRegister(c: VtdConfig): bigint {
  let ecap = bit(ECAP_IR_BIT) | bit(ECAP_PT_BIT);
  if (c.qi) ecap |= bit(ECAP_QI_BIT);
  if (c.snoopControl) ecap |= bit(ECAP_SC_BIT);
  ecap |= BigInt(QEMU_IRO) << BigInt(ECAP_IRO_SHIFT);
  ecap |= 0xfn << BigInt(ECAP_MHMV_SHIFT);
  return ecap;
}

/** Decoded fields the kernel reads with its cap_* / ecap_* macros. */
export interface CapFields {
  ndoms: number;
  rwbf: boolean;
  cm: boolean;
  sagaw: number;
  mgaw: number;
  zlr: boolean;
  fro: number;
  superPageVal: number;
  psi: boolean;
  nfr: number;
  mamv: number;
  dwd: boolean;
  drd: boolean;
  qi: boolean;
  sc: boolean;
  iro: number;
}

export function decodeCaps(cap: bigint, ecap: bigint): CapFields {
  const f = (v: bigint, shift: number, width: number): number =>
    Number((v >> BigInt(shift)) & ((1n << BigInt(width)) - 1n));
  return {
    ndoms: 2 ** (4 + 2 * f(cap, CAP_ND_SHIFT, 3)),
    rwbf: f(cap, CAP_RWBF_BIT, 1) === 1,
    cm: f(cap, CAP_CM_BIT, 1) === 1,
    sagaw: f(cap, CAP_SAGAW_SHIFT, 5),
    mgaw: f(cap, CAP_MGAW_SHIFT, 6) + 1,
    zlr: f(cap, CAP_ZLR_BIT, 1) === 1,
    fro: f(cap, CAP_FRO_SHIFT, 10) * 16,
    superPageVal: f(cap, CAP_SLLPS_SHIFT, 4),
    psi: f(cap, CAP_PSI_BIT, 1) === 1,
    nfr: f(cap, CAP_NFR_SHIFT, 8) + 1,
    mamv: f(cap, CAP_MAMV_SHIFT, 6),
    dwd: f(cap, CAP_DWD_BIT, 1) === 1,
    drd: f(cap, CAP_DRD_BIT, 1) === 1,
    qi: f(ecap, ECAP_QI_BIT, 1) === 1,
    sc: f(ecap, ECAP_SC_BIT, 1) === 1,
    iro: f(ecap, ECAP_IRO_SHIFT, 10) * 16,
  };
}
