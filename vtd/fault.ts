/**
 * Fault recording: the fault-recording registers and the fault status they drive, kept apart
 * from the translation as QEMU keeps vtd_report_dmar_fault() apart from vtd_do_iommu_translate();
 * and the records' encoding and the kernel's messages for them.
 *
 * The hardware keeps 16-byte fault-recording registers: bits 63:12 the faulting page address,
 * bits 79:64 the source id, bit 95 PASID present, bits 103:96 the reason, bits 123:104 the PASID,
 * bit 126 the type (1 = read) and bit 127 F. The kernel's dmar_fault() decodes them and prints one
 * line each; the wording differs between the releases modelled (kernel-semantics 10.12 and 9.7).
 */
import { formatBdf } from './entries.js';
import { DMA_FSTS_PFO, DMA_FSTS_PPF, vtdHigh32, vtdLow32, vtdPageAddr } from './regs.js';

export interface FaultRecord {
  sid: number;
  /** page address of the faulting access (low 12 bits clear) */
  addr: bigint;
  isRead: boolean;
  reason: number;
  /** undefined: no PASID (requests without PASID, all that legacy mode produces) */
  pasid?: number;
}

/** dmar.c dma_remap_fault_reasons[]: reasons 0x00-0x0d. */
const DMA_REMAP_FAULT_REASONS: readonly string[] = [
  'Software',
  'Present bit in root entry is clear',
  'Present bit in context entry is clear',
  'Invalid context entry',
  'Access beyond MGAW',
  'PTE Write access is not set',
  'PTE Read access is not set',
  'Next page table ptr is invalid',
  'Root table address invalid',
  'Context table ptr is invalid',
  'non-zero reserved fields in RTP',
  'non-zero reserved fields in CTP',
  'non-zero reserved fields in PTE',
  'PCE for translation request specifies blocking',
];

/** dmar.c irq_remap_fault_reasons[]: reasons 0x20-0x26. */
const IRQ_REMAP_FAULT_REASONS: readonly string[] = [
  'Detected reserved fields in the decoded interrupt-remapped request',
  'Interrupt index exceeded the interrupt-remapping table size',
  'Present field in the IRTE entry is clear',
  'Error accessing interrupt-remapping table pointed by IRTA_REG',
  'Detected reserved fields in the IRTE entry',
  'Blocked a compatibility format interrupt request',
  'Blocked an interrupt request due to source-id verification failure',
];

export const enum FaultKind {
  Dma = 0,
  IntrRemap = 1,
}

/** dmar_get_fault_reason(): the text and whether it is an interrupt-remapping fault. */
export function faultReasonText(reason: number): { text: string; kind: FaultKind } {
  if (reason >= 0x20 && reason - 0x20 < IRQ_REMAP_FAULT_REASONS.length) {
    return { text: IRQ_REMAP_FAULT_REASONS[reason - 0x20]!, kind: FaultKind.IntrRemap };
  }
  if (reason < DMA_REMAP_FAULT_REASONS.length) {
    return { text: DMA_REMAP_FAULT_REASONS[reason]!, kind: FaultKind.Dma };
  }
  // the scalable-mode ("SM: ...") reasons are never produced in legacy mode
  return { text: 'Unknown', kind: FaultKind.Dma };
}

export type FaultMessageFormat = '5.10' | '6.1';

function pad2(n: number, radix: number): string {
  return n.toString(radix).padStart(2, '0');
}

/**
 * The line dmar_fault_do_one() prints for a record, without the "DMAR: " prefix.
 * 5.10: "[DMA Read] Request device [00:02.0] PASID ffffffff fault addr fffff000 [fault reason 06] ..."
 *       (reason in decimal, address without 0x, a missing PASID printed as -1 in %x).
 * 6.1:  "[DMA Read NO_PASID] Request device [00:02.0] fault addr 0xfffff000 [fault reason 0x06] ..."
 */
export function dmarFaultLine(rec: FaultRecord, format: FaultMessageFormat): string {
  const { text, kind } = faultReasonText(rec.reason);
  const dev = formatBdf(rec.sid);
  const type = rec.isRead ? 'DMA Read' : 'DMA Write';
  if (format === '5.10') {
    if (kind === FaultKind.IntrRemap) {
      return `[INTR-REMAP] Request device [${dev}] fault index ${(rec.addr >> 48n).toString(16)} [fault reason ${pad2(rec.reason, 10)}] ${text}`;
    }
    const pasid = rec.pasid === undefined ? 'ffffffff' : rec.pasid.toString(16);
    return `[${type}] Request device [${dev}] PASID ${pasid} fault addr ${rec.addr.toString(16)} [fault reason ${pad2(rec.reason, 10)}] ${text}`;
  }
  if (kind === FaultKind.IntrRemap) {
    return `[INTR-REMAP] Request device [${dev}] fault index 0x${(rec.addr >> 48n).toString(16)} [fault reason 0x${pad2(rec.reason, 16)}] ${text}`;
  }
  const tag = rec.pasid === undefined ? `${type} NO_PASID` : `${type} PASID 0x${rec.pasid.toString(16)}`;
  return `[${tag}] Request device [${dev}] fault addr 0x${rec.addr.toString(16)} [fault reason 0x${pad2(rec.reason, 16)}] ${text}`;
}

/** The 128-bit fault-recording register for a record with F set, as (low qword, high qword). */
export function encodeFaultRecord(rec: FaultRecord): { low: bigint; high: bigint } {
  const low = vtdPageAddr(rec.addr);
  let high = BigInt(rec.sid & 0xffff);
  if (rec.pasid !== undefined) high |= (1n << 31n) | (BigInt(rec.pasid & 0xfffff) << 40n);
  high |= BigInt(rec.reason & 0xff) << 32n;
  if (rec.isRead) high |= 1n << 62n;
  high |= 1n << 63n;
  return { low, high };
}

/** Decode as dmar_fault() does: reason and type from the top dword, sid and PP from the third. */
export function decodeFaultRecord(low: bigint, high: bigint): FaultRecord & { f: boolean } {
  const top = vtdHigh32(high);
  const third = vtdLow32(high);
  const pasidPresent = ((third >>> 31) & 1) === 1;
  const rec: FaultRecord & { f: boolean } = {
    f: ((top >>> 31) & 1) === 1,
    isRead: ((top >>> 30) & 1) === 1,
    reason: top & 0xff,
    sid: third & 0xffff,
    addr: vtdPageAddr(low),
  };
  if (pasidPresent) rec.pasid = (top >>> 8) & 0xfffff;
  return rec;
}

/** A fault reason as the kernel's DMAR messages print it: `0x06` (%02x). */
export function reasonHex(reason: number): string {
  return `0x${reason.toString(16).padStart(2, '0')}`;
}

/**
 * The fault-recording registers (FRCD_REG) and the fault status bits they drive: PFO, PPF and FRI
 * of FSTS_REG (IQE belongs to the invalidation queue). Records are kept as QEMU 7.2's
 * vtd_report_dmar_fault() keeps them.
 */
export class FaultRecording {
  private readonly regs: (FaultRecord | undefined)[];
  /** the register the next record goes to (QEMU's next_frcd_reg) */
  private next = 0;
  /** FSTS.FRI: the register the first of the pending records went to */
  private fri = 0;
  /** FSTS.PFO: set when a record was lost to a full register, until software clears it */
  private pfo = false;

  constructor(count: number) {
    this.regs = new Array<FaultRecord | undefined>(count).fill(undefined);
  }

  get count(): number {
    return this.regs.length;
  }

  /** FSTS_REG's PFO, PPF (set while any record has F) and FRI (bits 15:8). */
  status(): number {
    const ppf = this.regs.some((r) => r !== undefined) ? DMA_FSTS_PPF : 0;
    return (this.pfo ? DMA_FSTS_PFO : 0) | ppf | ((this.fri & 0xff) << 8);
  }

  /** FSTS_REG write of 1 to PFO. */
  clearOverflow(): void {
    this.pfo = false;
  }

  /** Fault-recording register i as its two qwords (F clear when empty). */
  read(i: number): { low: bigint; high: bigint } {
    const r = this.regs[i];
    return r === undefined ? { low: 0n, high: 0n } : encodeFaultRecord(r);
  }

  /** Writing 1 to F releases the record. */
  clear(i: number): void {
    this.regs[i] = undefined;
  }

  /**
   * vtd_report_dmar_fault(): nothing while PFO is set; a second fault from a source that already
   * has a pending record is collapsed into it (vtd_try_collapse_fault); a full next register sets
   * PFO. Returns whether the fault was recorded.
   */
  report(rec: FaultRecord): boolean {
    if (this.pfo) return false;
    if (this.regs.some((r) => r !== undefined && r.sid === rec.sid)) return false;
    if (this.regs[this.next] !== undefined) {
      this.pfo = true;
      return false;
    }
    const wasPending = this.regs.some((r) => r !== undefined);
    this.regs[this.next] = rec;
    if (!wasPending) this.fri = this.next;
    this.next = (this.next + 1) % this.regs.length;
    return true;
  }
}
