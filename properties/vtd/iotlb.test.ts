/**
 * IOTLB and context-cache behaviour (kernel-semantics 5.5, 7.5, 9.5.7; shared/oracle/README.md):
 * cached translations outlive page-table changes until an invalidation covers them.
 */
import { describe, expect, it } from 'vitest';
import type { DomainTables } from '../../testbench/vtd-program.js';
import { InvGranularity } from '../../vtd/regs.js';
import { decodeIotlbDescriptor, iotlbDescriptor, ccDescriptor, qiTypeName, waitDescriptor } from '../../vtd/qi.js';
import { PAGE, R, RW, hex, iovaOf, patternBytes, rig, type Rig } from './helpers.js';

const A = 0x3405; // phys page A: first word reads 00 50 40 03 00 00 00 a5
const B = 0x3406; // phys page B: first word reads 00 60 40 03 00 00 00 a5
const A_WORD = '00 50 40 03 00 00 00 a5';
const B_WORD = '00 60 40 03 00 00 00 a5';

function read8(r: Rig, pfn: number, sid = r.sid): string {
  const res = r.hw.dmaRead(sid, iovaOf(pfn), 8);
  return res.fault === undefined ? hex(res.data) : `fault ${res.fault.reason}`;
}

type Flush = (r: Rig, pfn: number) => void;
const FLUSHES: readonly (readonly [string, Flush])[] = [
  ['page-selective (AM 0)', (r, pfn) => r.prog.flushIotlbPages(r.did, pfn, 0)],
  ['domain-selective', (r) => r.prog.flushIotlbDomain(r.did)],
  ['global', (r) => r.prog.flushIotlbGlobal()],
];

describe.each([
  ['queued invalidation', true],
  ['register invalidation', false],
] as const)('staleness with %s', (_name, qi) => {
  describe.each(FLUSHES)('%s flush', (_flushName, flush) => {
    it('unmap without invalidation: the device still reads the old page; after the flush it faults', () => {
      const r = rig({ qi });
      r.prog.map(r.dom, 0x100, A, 1, RW);
      expect(read8(r, 0x100)).toBe(A_WORD);
      r.prog.unmap(r.dom, 0x100, 1);
      expect(read8(r, 0x100)).toBe(A_WORD);
      // writes go through the stale entry as well
      expect(r.hw.dmaWrite(r.sid, iovaOf(0x100, 8), Uint8Array.of(0x77))).toEqual({ written: 1 });
      expect(hex(r.hw.memory.read(A * PAGE + 8, 2))).toBe('77 50');
      flush(r, 0x100);
      expect(read8(r, 0x100)).toBe('fault 6');
      expect(r.hw.dmaWrite(r.sid, iovaOf(0x100), Uint8Array.of(1)).fault).toMatchObject({ reason: 5 });
    });

    it('remap elsewhere without invalidation: the old page until the flush, then the new one', () => {
      const r = rig({ qi });
      r.prog.map(r.dom, 0x100, A, 1, RW);
      expect(read8(r, 0x100)).toBe(A_WORD);
      r.prog.map(r.dom, 0x100, B, 1, R);
      expect(read8(r, 0x100)).toBe(A_WORD);
      // still the old permissions too
      expect(r.hw.dmaWrite(r.sid, iovaOf(0x100), Uint8Array.of(1)).written).toBe(1);
      flush(r, 0x100);
      expect(read8(r, 0x100)).toBe(B_WORD);
      expect(r.hw.dmaWrite(r.sid, iovaOf(0x100), Uint8Array.of(1)).fault).toMatchObject({ reason: 5 });
    });
  });
});

describe('page-selective invalidation ignores address bits below AM (kernel-semantics 7.5)', () => {
  function setup(): Rig {
    const r = rig();
    r.prog.map(r.dom, 0x100, 0x3500, 4, RW);
    expect(read8(r, 0x101)).toBe('00 10 50 03 00 00 00 a5');
    expect(read8(r, 0x102)).toBe('00 20 50 03 00 00 00 a5');
    r.prog.unmap(r.dom, 0x101, 2);
    return r;
  }

  it('AM=1 at the unaligned pfn 0x101 covers the block 0x100..0x101 only: 0x102 stays stale', () => {
    const r = setup();
    r.prog.flushIotlbPages(r.did, 0x101, 1);
    expect(read8(r, 0x101)).toBe('fault 6');
    expect(read8(r, 0x102)).toBe('00 20 50 03 00 00 00 a5');
    // 0x100 and 0x103 are still mapped and correct
    expect(read8(r, 0x100)).toBe('00 00 50 03 00 00 00 a5');
    expect(read8(r, 0x103)).toBe('00 30 50 03 00 00 00 a5');
  });

  it('AM=2 from 0x101 covers 0x100..0x103: both unmapped pages fault', () => {
    const r = setup();
    r.prog.flushIotlbPages(r.did, 0x101, 2);
    expect(read8(r, 0x101)).toBe('fault 6');
    expect(read8(r, 0x102)).toBe('fault 6');
  });

  it('AM=0 at 0x102 leaves 0x101 stale', () => {
    const r = setup();
    r.prog.flushIotlbPages(r.did, 0x102, 0);
    expect(read8(r, 0x101)).toBe('00 10 50 03 00 00 00 a5');
    expect(read8(r, 0x102)).toBe('fault 6');
  });

  it('a page-selective flush of a 4 KiB block inside a 2 MiB leaf drops the whole leaf', () => {
    const r = rig();
    r.prog.map(r.dom, 0x200, 0x3400, 1, RW, 2);
    expect(read8(r, 0x2ab)).toBe('00 b0 4a 03 00 00 00 a5');
    r.prog.unmap(r.dom, 0x200, 1, 2);
    expect(read8(r, 0x3ff)).toBe('00 f0 5f 03 00 00 00 a5');
    r.prog.flushIotlbPages(r.did, 0x3fe, 1);
    expect(read8(r, 0x2ab)).toBe('fault 6');
  });
});

describe('domain isolation of invalidations', () => {
  function twoDomains(): { r: Rig; sid2: number; did2: number } {
    const r = rig();
    const did2 = 2;
    const sid2 = 0x18;
    const dom2 = r.prog.newDomain(did2, 39);
    r.prog.attach(sid2, dom2);
    r.prog.flushContextDevice(sid2, 0);
    r.prog.map(r.dom, 0x100, A, 1, RW);
    r.prog.map(dom2, 0x100, B, 1, RW);
    expect(read8(r, 0x100)).toBe(A_WORD);
    expect(read8(r, 0x100, sid2)).toBe(B_WORD);
    r.prog.unmap(r.dom, 0x100, 1);
    r.prog.unmap(dom2, 0x100, 1);
    return { r, sid2, did2 };
  }

  it('a domain-selective flush of one domain id leaves the other domain stale', () => {
    const { r, sid2, did2 } = twoDomains();
    r.prog.flushIotlbDomain(r.did);
    expect(read8(r, 0x100)).toBe('fault 6');
    expect(read8(r, 0x100, sid2)).toBe(B_WORD);
    r.prog.flushIotlbDomain(did2);
    expect(read8(r, 0x100, sid2)).toBe('fault 6');
  });

  it('a page-selective flush of one domain id leaves the same page of the other domain', () => {
    const { r, sid2 } = twoDomains();
    r.prog.flushIotlbPages(r.did, 0x100, 0);
    expect(read8(r, 0x100)).toBe('fault 6');
    expect(read8(r, 0x100, sid2)).toBe(B_WORD);
  });

  it('a global flush drops both', () => {
    const { r, sid2 } = twoDomains();
    r.prog.flushIotlbGlobal();
    expect(read8(r, 0x100)).toBe('fault 6');
    expect(read8(r, 0x100, sid2)).toBe('fault 6');
  });
});

describe('bounded IOTLB with FIFO replacement', () => {
  it('with 4 entries the oldest translation is evicted first, deterministically', () => {
    const r = rig({ iotlbEntries: 4 });
    r.prog.map(r.dom, 0, 0x3500, 6, RW);
    for (const pfn of [0, 1, 2, 3]) read8(r, pfn);
    expect(r.hw.iotlb.size).toBe(4);
    // a fifth translation evicts pfn 0 (the oldest)
    read8(r, 4);
    expect(r.hw.iotlb.size).toBe(4);
    // make every cached translation observable as stale
    r.prog.unmap(r.dom, 0, 5);
    expect(read8(r, 0)).toBe('fault 6');
    for (const pfn of [1, 2, 3, 4]) expect(read8(r, pfn)).toBe(patternWord(0x3500 + pfn));
    // hits do not refresh the order: pfn 5 now evicts pfn 1
    read8(r, 5);
    expect(read8(r, 1)).toBe('fault 6');
    for (const pfn of [2, 3, 4]) expect(read8(r, pfn)).toBe(patternWord(0x3500 + pfn));
    expect(r.hw.iotlb.size).toBe(4);
  });

  it('a re-inserted translation goes to the back of the queue', () => {
    const r = rig({ iotlbEntries: 2 });
    r.prog.map(r.dom, 0, 0x3500, 3, RW);
    read8(r, 0);
    read8(r, 1);
    // drop pfn 0 only, then re-cache it: pfn 1 is now the oldest
    r.prog.flushIotlbPages(r.did, 0, 0);
    read8(r, 0);
    read8(r, 2);
    r.prog.unmap(r.dom, 0, 3);
    expect(read8(r, 1)).toBe('fault 6');
    expect(read8(r, 0)).toBe(patternWord(0x3500));
    expect(read8(r, 2)).toBe(patternWord(0x3502));
  });
});

/** The first word of a physical page, as the pattern has it. */
function patternWord(pfn: number): string {
  return hex(patternBytes(pfn * PAGE, 8));
}

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

describe('the context cache', () => {
  function twoDomainRig(): { r: Rig; dom2: DomainTables } {
    const r = rig();
    const dom2 = r.prog.newDomain(2, 39);
    r.prog.map(r.dom, 0x100, A, 1, RW);
    r.prog.map(dom2, 0x100, B, 1, RW);
    return { r, dom2 };
  }

  it('a changed context entry is not seen until a context-cache flush covers the device', () => {
    const { r, dom2 } = twoDomainRig();
    expect(read8(r, 0x100)).toBe(A_WORD);
    r.prog.attach(r.sid, dom2);
    expect(read8(r, 0x100)).toBe(A_WORD);
    r.prog.flushContextDevice(r.sid, 0);
    expect(read8(r, 0x100)).toBe(B_WORD);
  });

  it('a device-selective flush of another device does not cover this one', () => {
    const { r, dom2 } = twoDomainRig();
    expect(read8(r, 0x100)).toBe(A_WORD);
    r.prog.attach(r.sid, dom2);
    r.prog.flushContextDevice(0x18, 0);
    expect(read8(r, 0x100)).toBe(A_WORD);
    r.prog.flushContextGlobal();
    expect(read8(r, 0x100)).toBe(B_WORD);
  });

  it('FM 3 masks the function bits: one device-selective command covers 00:02.0 and 00:02.1', () => {
    const { r, dom2 } = twoDomainRig();
    r.prog.attach(0x11, r.dom);
    expect(read8(r, 0x100)).toBe(A_WORD);
    expect(read8(r, 0x100, 0x11)).toBe(A_WORD);
    r.prog.attach(r.sid, dom2);
    r.prog.attach(0x11, dom2);
    // FM 0 for 00:02.1 only
    r.hw.writeContextCommand(0xe000000000110000n);
    expect(read8(r, 0x100)).toBe(A_WORD);
    expect(read8(r, 0x100, 0x11)).toBe(B_WORD);
    // ICC | CIRG 3 | FM 3 (bits 33:32) | SID 0x10
    expect(r.hw.writeContextCommand(0xe000000300100000n)).toBe(0x7800000300100000n);
    expect(read8(r, 0x100)).toBe(B_WORD);
  });

  it('a domain-selective context flush covers the devices cached with that domain id', () => {
    const { r, dom2 } = twoDomainRig();
    expect(read8(r, 0x100)).toBe(A_WORD);
    r.prog.attach(r.sid, dom2);
    // ICC | CIRG 2 (domain) | DID 2: the cached entry names DID 1, so nothing is dropped
    r.hw.writeContextCommand(0xc000000000000002n);
    expect(read8(r, 0x100)).toBe(A_WORD);
    // DID 1
    r.hw.writeContextCommand(0xc000000000000001n);
    expect(read8(r, 0x100)).toBe(B_WORD);
  });
});
