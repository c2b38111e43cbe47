/**
 * The DMA engine: what a device sees. A request is translated page by page (VtdTranslation) and
 * reaches memory up to the first page that faults; that fault is reported to the fault-recording
 * registers unless the context has FPD set (QEMU's vtd_do_iommu_translate() calling
 * vtd_report_dmar_fault() when fault processing is not disabled).
 */
import type { VtdCounters } from './counters.js';
import type { FaultRecording } from './fault.js';
import type { PhysMemory } from './memory.js';
import { VTD_FR_ADDR_BEYOND_MGAW, VTD_PAGE_SIZE, vtdPageOffset, vtdPfn, vtdPfnAddr } from './regs.js';
import { PFN_LIMIT_64, type VtdTranslation } from './walk.js';

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

export class DmaEngine {
  constructor(
    private readonly memory: PhysMemory,
    private readonly translation: VtdTranslation,
    private readonly faults: FaultRecording,
    private readonly ctr: VtdCounters,
  ) {}

  /** The fault of a request at pfn (code: the reason negated), reported unless FPD is set. */
  private fault(sid: number, pfn: number, code: number, isRead: boolean): DmaFault {
    const reason = -code;
    const addr = vtdPfnAddr(pfn);
    let recorded = false;
    if (!this.translation.lastFaultSuppressed) {
      recorded = this.faults.report({ sid, addr, isRead, reason });
    }
    if (recorded) this.ctr.faultsRecorded++;
    else this.ctr.faultsDropped++;
    return { sid, reason, isRead, addr, recorded };
  }

  /** A device read of len bytes at iova, page by page, stopping at the first fault. */
  dmaRead(sid: number, iova: bigint, len: number): DmaReadResult {
    let pfn = vtdPfn(iova);
    let off = vtdPageOffset(iova);
    const out = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const phys = pfn < PFN_LIMIT_64 ? this.translation.translate(sid, pfn, false) : -VTD_FR_ADDR_BEYOND_MGAW;
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
    let pfn = vtdPfn(iova);
    let off = vtdPageOffset(iova);
    let done = 0;
    while (done < data.length) {
      const phys = pfn < PFN_LIMIT_64 ? this.translation.translate(sid, pfn, true) : -VTD_FR_ADDR_BEYOND_MGAW;
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
