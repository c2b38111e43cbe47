/**
 * The invalidation interfaces (kernel-semantics 9.5.7): register-based IOTLB_REG/CCMD_REG
 * writes and their read-back, and the queued-invalidation descriptors as logged and executed.
 */
import { describe, expect, it } from 'vitest';
import { InvGranularity } from '../../vtd/regs.js';
import { decodeIotlbDescriptor, iotlbDescriptor, ccDescriptor, qiTypeName, waitDescriptor } from '../../vtd/qi-desc.js';
import { A, A_WORD, RW, iovaOf, read8, rig } from './helpers.js';

describe('register-based invalidation (no QI)', () => {
  it('IOTLB_REG reads back with IVT clear and IAIG = the granularity performed', () => {
    const r = rig({ qi: false });
    expect(r.hw.queuedInvalidationEnabled).toBe(false);
    // IVT | IIRG 3 (page) | DID 4 → IAIG 3
    expect(r.hw.writeIotlbRegister(0xffff4002n, 0xb000000400000000n)).toBe(0x3600000400000000n);
    // IVT | IIRG 2 (domain) | DID 4 → IAIG 2
    expect(r.hw.writeIotlbRegister(0n, 0xa000000400000000n)).toBe(0x2400000400000000n);
    // IVT | IIRG 1 (global) → IAIG 1
    expect(r.hw.writeIotlbRegister(0n, 0x9000000000000000n)).toBe(0x1200000000000000n);
    // AM 19 > MAMV 18: failed, IAIG 0 (the kernel logs "Flush IOTLB failed")
    expect(r.hw.writeIotlbRegister(0xffff4013n, 0xb000000400000000n)).toBe(0x3000000400000000n);
    // with DW (bit 48) as the kernel sets it
    expect(r.hw.writeIotlbRegister(0n, 0xa001000400000000n)).toBe(0x2401000400000000n);
    expect(r.hw.qiLog.length).toBe(0);
  });

  it('a page-selective register flush with AM > MAMV invalidates nothing', () => {
    const r = rig({ qi: false });
    r.prog.map(r.dom, 0x100, A, 1, RW);
    read8(r, 0x100);
    r.prog.unmap(r.dom, 0x100, 1);
    r.hw.writeIotlbRegister(iovaOf(0x100) | 19n, 0xb000000000000000n | (BigInt(r.did) << 32n));
    expect(read8(r, 0x100)).toBe(A_WORD);
  });

  it('without IVT the register write does nothing', () => {
    const r = rig({ qi: false });
    r.prog.map(r.dom, 0x100, A, 1, RW);
    read8(r, 0x100);
    r.prog.unmap(r.dom, 0x100, 1);
    expect(r.hw.writeIotlbRegister(0n, 0x2000000100000000n)).toBe(0x2000000100000000n);
    expect(read8(r, 0x100)).toBe(A_WORD);
  });

  it('CCMD_REG reads back with ICC clear and CAIG = the granularity performed', () => {
    const r = rig({ qi: false });
    // ICC | CIRG 3 (device) | SID 0x10 | DID 4 → CAIG 3 in bits 60:59
    expect(r.hw.writeContextCommand(0xe000000000100004n)).toBe(0x7800000000100004n);
    // ICC | CIRG 1 (global) → CAIG 1
    expect(r.hw.writeContextCommand(0xa000000000000000n)).toBe(0x2800000000000000n);
  });
});

describe('the queued-invalidation log', () => {
  it('PSI for did 4, addr 0xffff4000, AM 2 with both drain bits: qw0 0x400f2, qw1 0xffff4002, then a wait', () => {
    const r = rig({}, { did: 4 });
    const before = r.hw.qiLog.length;
    const n = r.hw.counters.qiDescriptors;
    r.prog.flushIotlbPages(4, 0xffff4, 2);
    const log = r.hw.qiLog.slice(before);
    expect(log.length).toBe(2);
    expect(log[0]).toEqual({ qw0: 0x400f2n, qw1: 0xffff4002n, qw2: 0n, qw3: 0n });
    // wait descriptor: type 5, SW (bit 5), status data in 63:32
    expect(log[1]!.qw0 & 0xffffffffn).toBe(0x25n);
    expect(qiTypeName(log[0]!.qw0)).toBe('iotlb_inv');
    expect(qiTypeName(log[1]!.qw0)).toBe('inv_wait');
    expect(r.hw.counters.qiDescriptors).toBe(n + 2);
  });

  it('DSI did 4: qw0 0x400e2, qw1 0; global: qw0 0xd2; device-selective context flush of 00:02.0 with DID 0: 0x1000000031', () => {
    const r = rig({}, { did: 4 });
    const before = r.hw.qiLog.length;
    r.prog.flushIotlbDomain(4);
    r.prog.flushIotlbGlobal();
    r.prog.flushContextDevice(0x10, 0);
    r.prog.flushContextGlobal();
    const log = r.hw.qiLog.slice(before).filter((d) => (d.qw0 & 0xfn) !== 5n);
    expect(log).toEqual([
      { qw0: 0x400e2n, qw1: 0n, qw2: 0n, qw3: 0n },
      { qw0: 0xd2n, qw1: 0n, qw2: 0n, qw3: 0n },
      { qw0: 0x1000000031n, qw1: 0n, qw2: 0n, qw3: 0n },
      { qw0: 0x11n, qw1: 0n, qw2: 0n, qw3: 0n },
    ]);
    expect(qiTypeName(0x1000000031n)).toBe('cc_inv');
  });

  it('the attach-time flushes of the rig are the kernel CM sequence: cc_inv 0x1000000031 then iotlb_inv 0x400e2', () => {
    const r = rig({}, { did: 4 });
    const log = r.hw.qiLog.slice().filter((d) => (d.qw0 & 0xfn) !== 5n);
    expect(log.map((d) => d.qw0)).toEqual([0x1000000031n, 0x400e2n]);
    expect(r.hw.qiLog.length).toBe(4);
  });

  it('descriptors are logged in submission order, each wait carrying its own status data', () => {
    const r = rig({}, { did: 4 });
    const before = r.hw.qiLog.length;
    r.prog.flushIotlbPages(4, 0x100, 0);
    r.prog.flushIotlbPages(4, 0x200, 3);
    const log = r.hw.qiLog.slice(before);
    expect(log.map((d) => qiTypeName(d.qw0))).toEqual(['iotlb_inv', 'inv_wait', 'iotlb_inv', 'inv_wait']);
    expect(log[0]).toEqual({ qw0: 0x400f2n, qw1: 0x100000n, qw2: 0n, qw3: 0n });
    expect(log[2]).toEqual({ qw0: 0x400f2n, qw1: 0x200003n, qw2: 0n, qw3: 0n });
    // consecutive status data values in bits 63:32
    expect((log[3]!.qw0 >> 32n) - (log[1]!.qw0 >> 32n)).toBe(1n);
  });

  it('descriptor builders and decoder agree with the literal encodings', () => {
    expect(iotlbDescriptor(InvGranularity.Page, 4, { dr: true, dw: true }, 0xffff4000n, false, 2)).toEqual({
      qw0: 0x400f2n,
      qw1: 0xffff4002n,
      qw2: 0n,
      qw3: 0n,
    });
    expect(iotlbDescriptor(InvGranularity.Domain, 4, { dr: true, dw: true }, 0n, false, 0).qw0).toBe(0x400e2n);
    expect(iotlbDescriptor(InvGranularity.Page, 4, { dr: false, dw: true }, 0x1000n, true, 0).qw1).toBe(0x1040n);
    expect(iotlbDescriptor(InvGranularity.Page, 4, { dr: false, dw: true }, 0x1000n, true, 0).qw0).toBe(0x40072n);
    expect(ccDescriptor(InvGranularity.Page, 0, 0x10, 0).qw0).toBe(0x1000000031n);
    expect(ccDescriptor(InvGranularity.Page, 3, 0x10, 3).qw0).toBe(0x3001000030031n);
    expect(waitDescriptor(1, 0x7f00002000)).toEqual({ qw0: 0x100000025n, qw1: 0x7f00002000n, qw2: 0n, qw3: 0n });
    expect(decodeIotlbDescriptor({ qw0: 0x400f2n, qw1: 0xffff4002n, qw2: 0n, qw3: 0n })).toEqual({
      gran: 3,
      did: 4,
      dr: true,
      dw: true,
      pfn: 0xffff4,
      ih: false,
      am: 2,
    });
    expect(qiTypeName(0x3n)).toBe('dev_tlb_inv');
    expect(qiTypeName(0xfn)).toBe('0xf');
  });

  it('an unknown descriptor type sets IQE (fault status bit 4) and halts the queue', () => {
    const r = rig();
    const before = r.hw.qiLog.length;
    const tail = r.hw.queueTail;
    r.hw.memory.writeU64(r.hw.queueBase + tail * 16, 0xfn);
    r.hw.memory.writeU64(r.hw.queueBase + tail * 16 + 8, 0n);
    r.hw.writeQueueTail(tail + 1);
    expect(r.hw.readFaultStatus() & 0x10).toBe(0x10);
    expect(r.hw.queueHead).toBe(tail);
    expect(r.hw.qiLog.length).toBe(before);
    // software clears IQE (write 1) after fixing the descriptor; the queue resumes
    r.hw.memory.writeU64(r.hw.queueBase + tail * 16, 0xd2n);
    r.hw.writeFaultStatus(0x10);
    expect(r.hw.readFaultStatus() & 0x10).toBe(0);
    r.hw.writeQueueTail(tail + 1);
    expect(r.hw.queueHead).toBe(tail + 1);
    expect(r.hw.qiLog.slice(before)).toEqual([{ qw0: 0xd2n, qw1: 0n, qw2: 0n, qw3: 0n }]);
  });

  it('a queued PSI with AM > MAMV is an invalid descriptor (IQE), as in QEMU', () => {
    const r = rig();
    expect(() => r.prog.flushIotlbPages(r.did, 0, 19)).toThrow(/queue error/);
    expect(r.hw.readFaultStatus() & 0x10).toBe(0x10);
  });

  it('keeps the latest descriptors of a long life, counted from the first, not all of them', () => {
    const r = rig({}, { did: 4 });
    const start = r.hw.qiLog.length;
    // 5000 flushes: a PSI and a wait each
    for (let i = 0; i < 5000; i++) r.prog.flushIotlbPages(4, 0x1000 + i, 0);
    expect(r.hw.qiLog.length).toBe(start + 10000);
    expect(r.hw.counters.qiDescriptors).toBe(r.hw.qiLog.length);
    // the last flush is still there, by its count
    const last = r.hw.qiLog.slice(r.hw.qiLog.length - 2);
    expect(decodeIotlbDescriptor(last[0]!)).toMatchObject({ did: 4, pfn: 0x1000 + 4999, am: 0 });
    expect(r.hw.qiLog.at(r.hw.qiLog.length - 2)).toEqual(last[0]);
    // the first ones are gone, and asking for them says so
    expect(r.hw.qiLog.at(start)).toBeUndefined();
    expect(() => r.hw.qiLog.slice(start)).toThrow(/keeps descriptors from \d+ on, not/);
    expect(r.hw.qiLog.slice(r.hw.qiLog.length - 4096).length).toBe(4096);
  });
});
