/**
 * DMAR fault lines of a kernel log, decoded back into their parts for reports. Both releases'
 * dmar_fault_do_one() formats (vtd/fault.ts dmarFaultLine writes them):
 *   5.10: "DMAR: [DMA Read] Request device [00:02.0] PASID ffffffff fault addr fffff000 [fault reason 06] ..."
 *         (the reason in decimal, the address without 0x)
 *   6.1:  "DMAR: [DMA Read NO_PASID] Request device [00:02.0] fault addr 0xfffff000 [fault reason 0x06] ..."
 */
import { faultReasonText } from '../vtd/fault.js';
import type { DecodedFault } from './types.js';

const FAULT_LINE = /\[DMA (Read|Write)[^\]]*\] Request device \[([0-9a-f]{2}:[0-9a-f]{2}\.[0-7])\](?: PASID [0-9a-f]+)? fault addr (?:0x)?([0-9a-f]+) \[fault reason (0x[0-9a-f]+|\d+)\]/;

/** The fault a log line reports, or undefined for any other line. */
export function decodeFaultLine(text: string): DecodedFault | undefined {
  const m = FAULT_LINE.exec(text);
  if (m === null) return undefined;
  const reason = m[4].startsWith('0x') ? parseInt(m[4].slice(2), 16) : parseInt(m[4], 10);
  return {
    reason,
    reasonText: faultReasonText(reason).text,
    access: m[1] === 'Read' ? 'read' : 'write',
    addr: `0x${m[3]}`,
    device: m[2],
  };
}

