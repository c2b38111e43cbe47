/**
 * Fault records and the kernel's fault messages (kernel-semantics 5.7, 9.7, 10.12), the fault
 * registers of the unit, and device accesses that run into a fault part-way.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeContext, entryPfn } from '../../vtd/entries.js';
import { decodeFaultRecord, dmarFaultLine, encodeFaultRecord, faultReasonText, type FaultRecord } from '../../vtd/fault.js';
import { PAGE, RW, SID_EDU, hex, patternBytes, rig } from './helpers.js';

const READ_FFFFF: FaultRecord = { sid: SID_EDU, addr: 0xfffff000n, isRead: true, reason: 6 };

describe('dmarFaultLine: the two releases', () => {
  it('the oracle lines, byte for byte', () => {
    expect(dmarFaultLine(READ_FFFFF, '5.10')).toBe(
      '[DMA Read] Request device [00:02.0] PASID ffffffff fault addr fffff000 [fault reason 06] PTE Read access is not set',
    );
    expect(dmarFaultLine(READ_FFFFF, '6.1')).toBe(
      '[DMA Read NO_PASID] Request device [00:02.0] fault addr 0xfffff000 [fault reason 0x06] PTE Read access is not set',
    );
    const w: FaultRecord = { sid: SID_EDU, addr: 0xffffc000n, isRead: false, reason: 5 };
    expect(dmarFaultLine(w, '5.10')).toBe(
      '[DMA Write] Request device [00:02.0] PASID ffffffff fault addr ffffc000 [fault reason 05] PTE Write access is not set',
    );
    expect(dmarFaultLine(w, '6.1')).toBe(
      '[DMA Write NO_PASID] Request device [00:02.0] fault addr 0xffffc000 [fault reason 0x05] PTE Write access is not set',
    );
  });

  // reason → [5.10 line, 6.1 line] for a read of 0xfffff000 by 00:02.0 (5.10: decimal reason;
  // 6.1: 0x%02x)
  const CASES: readonly (readonly [number, string, string])[] = [
    [
      1,
      '[DMA Read] Request device [00:02.0] PASID ffffffff fault addr fffff000 [fault reason 01] Present bit in root entry is clear',
      '[DMA Read NO_PASID] Request device [00:02.0] fault addr 0xfffff000 [fault reason 0x01] Present bit in root entry is clear',
    ],
    [
      2,
      '[DMA Read] Request device [00:02.0] PASID ffffffff fault addr fffff000 [fault reason 02] Present bit in context entry is clear',
      '[DMA Read NO_PASID] Request device [00:02.0] fault addr 0xfffff000 [fault reason 0x02] Present bit in context entry is clear',
    ],
    [
      3,
      '[DMA Read] Request device [00:02.0] PASID ffffffff fault addr fffff000 [fault reason 03] Invalid context entry',
      '[DMA Read NO_PASID] Request device [00:02.0] fault addr 0xfffff000 [fault reason 0x03] Invalid context entry',
    ],
    [
      4,
      '[DMA Read] Request device [00:02.0] PASID ffffffff fault addr fffff000 [fault reason 04] Access beyond MGAW',
      '[DMA Read NO_PASID] Request device [00:02.0] fault addr 0xfffff000 [fault reason 0x04] Access beyond MGAW',
    ],
    [
      5,
      '[DMA Read] Request device [00:02.0] PASID ffffffff fault addr fffff000 [fault reason 05] PTE Write access is not set',
      '[DMA Read NO_PASID] Request device [00:02.0] fault addr 0xfffff000 [fault reason 0x05] PTE Write access is not set',
    ],
    [
      6,
      '[DMA Read] Request device [00:02.0] PASID ffffffff fault addr fffff000 [fault reason 06] PTE Read access is not set',
      '[DMA Read NO_PASID] Request device [00:02.0] fault addr 0xfffff000 [fault reason 0x06] PTE Read access is not set',
    ],
    [
      0x0a,
      '[DMA Read] Request device [00:02.0] PASID ffffffff fault addr fffff000 [fault reason 10] non-zero reserved fields in RTP',
      '[DMA Read NO_PASID] Request device [00:02.0] fault addr 0xfffff000 [fault reason 0x0a] non-zero reserved fields in RTP',
    ],
    [
      0x0b,
      '[DMA Read] Request device [00:02.0] PASID ffffffff fault addr fffff000 [fault reason 11] non-zero reserved fields in CTP',
      '[DMA Read NO_PASID] Request device [00:02.0] fault addr 0xfffff000 [fault reason 0x0b] non-zero reserved fields in CTP',
    ],
    [
      0x0c,
      '[DMA Read] Request device [00:02.0] PASID ffffffff fault addr fffff000 [fault reason 12] non-zero reserved fields in PTE',
      '[DMA Read NO_PASID] Request device [00:02.0] fault addr 0xfffff000 [fault reason 0x0c] non-zero reserved fields in PTE',
    ],
    [
      0x1f,
      '[DMA Read] Request device [00:02.0] PASID ffffffff fault addr fffff000 [fault reason 31] Unknown',
      '[DMA Read NO_PASID] Request device [00:02.0] fault addr 0xfffff000 [fault reason 0x1f] Unknown',
    ],
  ];

  it.each(CASES)('reason %i', (reason, line510, line61) => {
    const rec: FaultRecord = { ...READ_FFFFF, reason };
    expect(dmarFaultLine(rec, '5.10')).toBe(line510);
    expect(dmarFaultLine(rec, '6.1')).toBe(line61);
  });

  it('the reason table: 0x00-0x0d known, 0x0e and 0x1f unknown', () => {
    expect(faultReasonText(0).text).toBe('Software');
    expect(faultReasonText(7).text).toBe('Next page table ptr is invalid');
    expect(faultReasonText(8).text).toBe('Root table address invalid');
    expect(faultReasonText(9).text).toBe('Context table ptr is invalid');
    expect(faultReasonText(0x0d).text).toBe('PCE for translation request specifies blocking');
    expect(faultReasonText(0x0e).text).toBe('Unknown');
    expect(faultReasonText(0x1f).text).toBe('Unknown');
  });

  it('addresses above 4 GiB print in full, lower-case, unpadded', () => {
    const rec: FaultRecord = { sid: 0xffff, addr: 0x1fffffffffff000n, isRead: false, reason: 4 };
    expect(dmarFaultLine(rec, '5.10')).toBe(
      '[DMA Write] Request device [ff:1f.7] PASID ffffffff fault addr 1fffffffffff000 [fault reason 04] Access beyond MGAW',
    );
    expect(dmarFaultLine(rec, '6.1')).toBe(
      '[DMA Write NO_PASID] Request device [ff:1f.7] fault addr 0x1fffffffffff000 [fault reason 0x04] Access beyond MGAW',
    );
    const zero: FaultRecord = { sid: 0x100, addr: 0n, isRead: true, reason: 1 };
    expect(dmarFaultLine(zero, '6.1')).toBe(
      '[DMA Read NO_PASID] Request device [01:00.0] fault addr 0x0 [fault reason 0x01] Present bit in root entry is clear',
    );
  });

  it('with a PASID: 5.10 prints it in %x, 6.1 as "PASID 0x%x"', () => {
    const rec: FaultRecord = { sid: SID_EDU, addr: 0x7f000n, isRead: false, reason: 5, pasid: 5 };
    expect(dmarFaultLine(rec, '5.10')).toBe(
      '[DMA Write] Request device [00:02.0] PASID 5 fault addr 7f000 [fault reason 05] PTE Write access is not set',
    );
    expect(dmarFaultLine(rec, '6.1')).toBe(
      '[DMA Write PASID 0x5] Request device [00:02.0] fault addr 0x7f000 [fault reason 0x05] PTE Write access is not set',
    );
  });

  it('interrupt-remapping reasons use the INTR-REMAP format with index = addr >> 48', () => {
    const rec: FaultRecord = { sid: SID_EDU, addr: 0x0022000000000000n, isRead: true, reason: 0x20 };
    expect(dmarFaultLine(rec, '5.10')).toBe(
      '[INTR-REMAP] Request device [00:02.0] fault index 22 [fault reason 32] Detected reserved fields in the decoded interrupt-remapped request',
    );
    expect(dmarFaultLine(rec, '6.1')).toBe(
      '[INTR-REMAP] Request device [00:02.0] fault index 0x22 [fault reason 0x20] Detected reserved fields in the decoded interrupt-remapped request',
    );
  });
});

describe('fault-recording register encoding', () => {
  it('F is bit 127, T (read) bit 126, reason bits 103:96, sid bits 79:64, page address bits 63:12', () => {
    expect(encodeFaultRecord(READ_FFFFF)).toEqual({ low: 0xfffff000n, high: 0xc000000600000010n });
    expect(encodeFaultRecord({ sid: SID_EDU, addr: 0xffffc000n, isRead: false, reason: 5 })).toEqual({
      low: 0xffffc000n,
      high: 0x8000000500000010n,
    });
    // PASID present (bit 95) and PASID in bits 123:104
    expect(encodeFaultRecord({ sid: SID_EDU, addr: 0xffffc000n, isRead: false, reason: 5, pasid: 5 })).toEqual({
      low: 0xffffc000n,
      high: 0x8000050580000010n,
    });
    // the low 12 bits of the address are not part of the record
    expect(encodeFaultRecord({ ...READ_FFFFF, addr: 0xfffff123n }).low).toBe(0xfffff000n);
  });

  it('decoding as dmar_fault() does', () => {
    expect(decodeFaultRecord(0xfffff000n, 0xc000000600000010n)).toEqual({
      f: true,
      isRead: true,
      reason: 6,
      sid: 0x10,
      addr: 0xfffff000n,
    });
    expect(decodeFaultRecord(0xffffc000n, 0x8000050580000010n)).toEqual({
      f: true,
      isRead: false,
      reason: 5,
      sid: 0x10,
      addr: 0xffffc000n,
      pasid: 5,
    });
    expect(decodeFaultRecord(0n, 0n).f).toBe(false);
  });

  it('decode(encode(r)) = r with F set', () => {
    const recArb = fc.record(
      {
        sid: fc.integer({ min: 0, max: 0xffff }),
        addr: fc.bigInt({ min: 0n, max: (1n << 52n) - 1n }).map((a) => a << 12n),
        isRead: fc.boolean(),
        reason: fc.integer({ min: 0, max: 0xff }),
        pasid: fc.integer({ min: 0, max: 0xfffff }),
      },
      { requiredKeys: ['sid', 'addr', 'isRead', 'reason'] },
    );
    fc.assert(
      fc.property(recArb, (rec) => {
        const { low, high } = encodeFaultRecord(rec);
        expect(high >> 63n).toBe(1n);
        expect((high >> 62n) & 1n).toBe(rec.isRead ? 1n : 0n);
        expect(decodeFaultRecord(low, high)).toEqual({ ...rec, f: true });
      }),
      { seed: 42, numRuns: 300 },
    );
  });
});

describe('the unit fault registers', () => {
  it('a faulting read sets PPF and fills record 0, which prints as the oracle line', () => {
    const { hw, sid } = rig();
    const r = hw.dmaRead(sid, 0xfffff000n, 4);
    expect(r.fault).toEqual({ sid: 0x10, reason: 6, isRead: true, addr: 0xfffff000n, recorded: true });
    // "DMAR: DRHD: handling fault status reg 2": PPF only, FRI 0
    expect(hw.readFaultStatus()).toBe(2);
    const reg = hw.readFaultRecord(0);
    expect(reg).toEqual({ low: 0xfffff000n, high: 0xc000000600000010n });
    const dec = decodeFaultRecord(reg.low, reg.high);
    expect(dec).toMatchObject({ f: true, sid: 0x10, addr: 0xfffff000n, reason: 6, isRead: true });
    expect(dmarFaultLine(dec, '6.1')).toBe(
      '[DMA Read NO_PASID] Request device [00:02.0] fault addr 0xfffff000 [fault reason 0x06] PTE Read access is not set',
    );
    expect(dmarFaultLine(dec, '5.10')).toBe(
      '[DMA Read] Request device [00:02.0] PASID ffffffff fault addr fffff000 [fault reason 06] PTE Read access is not set',
    );
    expect(hw.counters.faultsRecorded).toBe(1);
  });

  it('a second fault of the same source while the first is pending is collapsed; after clearing, a new one is recorded', () => {
    const { hw, sid } = rig();
    hw.dmaRead(sid, 0xfffff000n, 4);
    const second = hw.dmaWrite(sid, 0xffffc000n, new Uint8Array(4));
    expect(second.fault).toEqual({ sid: 0x10, reason: 5, isRead: false, addr: 0xffffc000n, recorded: false });
    expect(hw.counters).toMatchObject({ faultsRecorded: 1, faultsDropped: 1 });
    // the pending record is the first fault, and no overflow
    expect(hw.readFaultRecord(0)).toEqual({ low: 0xfffff000n, high: 0xc000000600000010n });
    expect(hw.readFaultStatus()).toBe(2);

    hw.clearFaultRecord(0);
    expect(hw.readFaultStatus()).toBe(0);
    expect(hw.readFaultRecord(0)).toEqual({ low: 0n, high: 0n });

    const third = hw.dmaWrite(sid, 0xffffc000n, new Uint8Array(4));
    expect(third.fault?.recorded).toBe(true);
    expect(hw.readFaultRecord(0)).toEqual({ low: 0xffffc000n, high: 0x8000000500000010n });
    expect(dmarFaultLine(decodeFaultRecord(hw.readFaultRecord(0).low, hw.readFaultRecord(0).high), '5.10')).toBe(
      '[DMA Write] Request device [00:02.0] PASID ffffffff fault addr ffffc000 [fault reason 05] PTE Write access is not set',
    );
    expect(hw.counters).toMatchObject({ faultsRecorded: 2, faultsDropped: 1 });
  });

  it('a fault of another source with the only record full sets PFO (bit 0); PFO is write-1-to-clear', () => {
    const { hw, sid } = rig();
    hw.dmaRead(sid, 0xfffff000n, 4);
    const other = hw.dmaRead(0x18, 0x1000n, 4);
    expect(other.fault).toMatchObject({ sid: 0x18, reason: 2, recorded: false });
    expect(hw.readFaultStatus()).toBe(3);
    hw.clearFaultRecord(0);
    // while PFO is set nothing is recorded
    expect(hw.dmaRead(0x18, 0x1000n, 4).fault?.recorded).toBe(false);
    hw.writeFaultStatus(1);
    expect(hw.readFaultStatus()).toBe(0);
    expect(hw.dmaRead(0x18, 0x1000n, 4).fault?.recorded).toBe(true);
    expect(hw.readFaultRecord(0)).toEqual({ low: 0x1000n, high: 0xc000000200000018n });
  });

  it('with two records, faults of two sources fill both and the index reports the first', () => {
    const { hw, sid } = rig({ faultRecords: 2 });
    expect(hw.faultRecordCount).toBe(2);
    hw.dmaRead(sid, 0x5000n, 4);
    hw.dmaWrite(0x18, 0x6000n, new Uint8Array(1));
    expect(hw.readFaultRecord(0)).toEqual({ low: 0x5000n, high: 0xc000000600000010n });
    expect(hw.readFaultRecord(1)).toEqual({ low: 0x6000n, high: 0x8000000200000018n });
    expect(hw.readFaultStatus()).toBe(2);
  });

  it('a context entry with FPD set suppresses recording, but the device still sees the fault', () => {
    const { hw, prog, dom, sid } = rig();
    const root = hw.memory.readU64(hw.rootTableAddress);
    const ctx = entryPfn(Number(root & 0xffffffffn), Number(root >> 32n));
    const { low, high } = encodeContext({ present: true, fpd: true, tt: 0, slptPfn: dom.rootPfn, aw: 1, did: 1 });
    hw.memory.writeQword(ctx * PAGE + sid * 16 + 8, high.lo, high.hi);
    hw.memory.writeQword(ctx * PAGE + sid * 16, low.lo, low.hi);
    prog.flushContextDevice(sid, 0);
    const r = hw.dmaRead(sid, 0x5000n, 4);
    expect(r.fault).toMatchObject({ reason: 6, recorded: false });
    expect(hw.readFaultStatus()).toBe(0);
    expect(hw.counters.faultsDropped).toBe(1);
  });
});

describe('accesses running into a fault part-way', () => {
  it('a 6000-byte read from offset 0x800 of the only mapped page returns 2048 bytes and faults at the next page', () => {
    const { hw, prog, dom, sid } = rig();
    prog.map(dom, 0x100, 0x3405, 1, RW);
    const r = hw.dmaRead(sid, 0x100800n, 6000);
    expect(r.data.length).toBe(2048);
    expect(hex(r.data.subarray(0, 8))).toBe('00 58 40 03 00 00 00 a5');
    expect(hex(r.data.subarray(2040))).toBe('f8 5f 40 03 00 00 00 a5');
    expect(hex(r.data)).toBe(hex(patternBytes(0x3405800, 2048)));
    expect(r.fault).toEqual({ sid: 0x10, reason: 6, isRead: true, addr: 0x101000n, recorded: true });
  });

  it('a crossing write stores the bytes before the faulting page and none after', () => {
    const { hw, prog, dom, sid } = rig();
    prog.map(dom, 0x100, 0x3405, 1, RW);
    const data = new Uint8Array(6000).fill(0x5a);
    const w = hw.dmaWrite(sid, 0x100800n, data);
    expect(w.written).toBe(2048);
    expect(w.fault).toEqual({ sid: 0x10, reason: 5, isRead: false, addr: 0x101000n, recorded: true });
    const page = hw.memory.read(0x3405000, PAGE);
    expect(hex(page.subarray(0, 0x800))).toBe(hex(patternBytes(0x3405000, 0x800)));
    expect(page.subarray(0x800).every((b) => b === 0x5a)).toBe(true);
    // the physically next page is untouched (the iova's next page has no translation)
    expect(hw.memory.isMaterialised(0x3406)).toBe(false);
    expect(hex(hw.memory.read(0x3406000, 8))).toBe('00 60 40 03 00 00 00 a5');
  });

  it('a read crossing from a mapped page into a write-only page stops at it (reason 6)', () => {
    const { hw, prog, dom, sid } = rig();
    prog.map(dom, 0x100, 0x3405, 1, RW);
    prog.map(dom, 0x101, 0x3406, 1, 2);
    const r = hw.dmaRead(sid, 0x100ffcn, 8);
    expect(hex(r.data)).toBe('00 00 00 a5');
    expect(r.fault).toMatchObject({ reason: 6, addr: 0x101000n });
  });

  it('reads spanning several mapped pages join their physical pages in iova order', () => {
    const { hw, prog, dom, sid } = rig();
    prog.map(dom, 0x100, 0x3407, 1, RW);
    prog.map(dom, 0x101, 0x3405, 1, RW);
    const r = hw.dmaRead(sid, 0x100ffcn, 8);
    expect(r.fault).toBeUndefined();
    expect(hex(r.data)).toBe('00 00 00 a5 00 50 40 03');
  });
});
