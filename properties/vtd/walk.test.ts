/**
 * Page walks through the root, context and second-level tables (kernel-semantics 5.1-5.3, 5.7):
 * widths 39/48/57, superpages, permissions, the context-level fault reasons, and the counters.
 */
import { describe, expect, it } from 'vitest';
import type { Agaw } from '../../vtd/caps.js';
import { encodeContext, entryPfn, type ContextEntry } from '../../vtd/entries.js';
import type { VtdHardware } from '../../vtd/hardware.js';
import { PAGE, R, RW, W, hex, patternBytes, rig } from './helpers.js';

interface WidthCase {
  agaw: Agaw;
  /** 2^(agaw - 12) - 1, written out by hand */
  highestPfn: number;
  /** the highest page's byte address, as a BigInt (exceeds 2^53 for 57) */
  highestIova: bigint;
  /** 2^agaw */
  beyond: bigint;
}

const WIDTHS: readonly WidthCase[] = [
  { agaw: 39, highestPfn: 0x7ffffff, highestIova: 0x7ffffff000n, beyond: 0x8000000000n },
  { agaw: 48, highestPfn: 0xfffffffff, highestIova: 0xfffffffff000n, beyond: 0x1000000000000n },
  { agaw: 57, highestPfn: 0x1fffffffffff, highestIova: 0x1fffffffffff000n, beyond: 0x200000000000000n },
];

describe.each(WIDTHS)('walks at aw-bits $agaw', ({ agaw, highestPfn, highestIova, beyond }) => {
  it('the lowest and highest pfn of the width translate to their physical pages', () => {
    const { hw, prog, dom, sid } = rig({ agaw });
    expect(dom.levels).toBe(agaw === 39 ? 3 : agaw === 48 ? 4 : 5);
    prog.map(dom, 0, 0x3405, 1, RW);
    prog.map(dom, highestPfn, 0x3406, 1, RW);

    const low = hw.dmaRead(sid, 0x100n, 8);
    expect(low.fault).toBeUndefined();
    expect(hex(low.data)).toBe('00 51 40 03 00 00 00 a5');

    const high = hw.dmaRead(sid, highestIova + 0x108n, 8);
    expect(high.fault).toBeUndefined();
    expect(hex(high.data)).toBe('08 61 40 03 00 00 00 a5');

    // the whole highest page
    const page = hw.dmaRead(sid, highestIova, PAGE);
    expect(hex(page.data)).toBe(hex(patternBytes(0x3406000, PAGE)));
  });

  it('an iova at 2^agaw faults with reason 4 (Access beyond MGAW)', () => {
    const { hw, prog, dom, sid } = rig({ agaw });
    prog.map(dom, highestPfn, 0x3406, 1, RW);
    const r = hw.dmaRead(sid, beyond, 8);
    expect(r.data.length).toBe(0);
    expect(r.fault).toMatchObject({ sid, reason: 4, isRead: true, addr: beyond });
    const w = hw.dmaWrite(sid, beyond + 0x1000n, new Uint8Array(4));
    expect(w.written).toBe(0);
    expect(w.fault).toMatchObject({ reason: 4, isRead: false, addr: beyond + 0x1000n });
  });

  it('a read running off the top of the width returns the bytes below and faults reason 4', () => {
    const { hw, prog, dom, sid } = rig({ agaw });
    prog.map(dom, highestPfn, 0x3406, 1, RW);
    const r = hw.dmaRead(sid, beyond - 2n, 4);
    expect(hex(r.data)).toBe('00 a5');
    expect(r.fault).toMatchObject({ reason: 4, addr: beyond });
  });

  it('a 2 MiB leaf at level 2 translates the pfns inside it', () => {
    const { hw, prog, dom, sid } = rig({ agaw });
    // iova pfn 0x200 (2 MiB) → phys 0x3400000 (2 MiB aligned)
    prog.map(dom, 0x200, 0x3400, 1, RW, 2);
    expect(hex(hw.dmaRead(sid, 0x237018n, 8).data)).toBe('18 70 43 03 00 00 00 a5');
    expect(hex(hw.dmaRead(sid, 0x200000n, 8).data)).toBe('00 00 40 03 00 00 00 a5');
    expect(hex(hw.dmaRead(sid, 0x3ffff8n, 8).data)).toBe('f8 ff 5f 03 00 00 00 a5');
    // just past the superpage: nothing mapped
    expect(hw.dmaRead(sid, 0x400000n, 8).fault).toMatchObject({ reason: 6, addr: 0x400000n });
  });

  it('a 1 GiB leaf at level 3 translates the pfns inside it', () => {
    const { hw, prog, dom, sid } = rig({ agaw });
    // iova 1 GiB → phys 1 GiB
    prog.map(dom, 0x40000, 0x40000, 1, RW, 3);
    expect(hex(hw.dmaRead(sid, 0x52345010n, 8).data)).toBe('10 50 34 52 00 00 00 a5');
    expect(hex(hw.dmaRead(sid, 0x7ffffff8n, 8).data)).toBe('f8 ff ff 7f 00 00 00 a5');
    expect(hw.dmaRead(sid, 0x80000000n, 8).fault).toMatchObject({ reason: 6 });
  });
});

describe('superpage sizes the unit does not support', () => {
  it('a 2 MiB leaf without SLLPS 2M faults reason 0x0c (reserved field in PTE)', () => {
    const { hw, prog, dom, sid } = rig({ superpages: [] });
    prog.map(dom, 0x200, 0x3400, 1, RW, 2);
    expect(hw.dmaRead(sid, 0x200000n, 8).fault).toMatchObject({ reason: 0x0c, isRead: true, addr: 0x200000n });
    expect(hw.dmaWrite(sid, 0x201000n, new Uint8Array(1)).fault).toMatchObject({ reason: 0x0c, isRead: false });
  });

  it('a 1 GiB leaf with only 2 MiB supported faults reason 0x0c; 2 MiB still works', () => {
    const { hw, prog, dom, sid } = rig({ superpages: ['2M'] });
    prog.map(dom, 0x40000, 0x40000, 1, RW, 3);
    prog.map(dom, 0x200, 0x3400, 1, RW, 2);
    expect(hw.dmaRead(sid, 0x40000000n, 8).fault).toMatchObject({ reason: 0x0c });
    expect(hex(hw.dmaRead(sid, 0x200000n, 8).data)).toBe('00 00 40 03 00 00 00 a5');
  });

  it('a PS bit at level 4 is never a valid leaf (reason 0x0c)', () => {
    const { hw, dom, sid } = rig({ agaw: 48 });
    // level-4 entry 0 of the domain: PS | R | W pointing at 512 GiB-aligned phys 0
    hw.memory.writeQword(dom.rootPfn * PAGE, 0x83, 0);
    expect(hw.dmaRead(sid, 0x1000n, 8).fault).toMatchObject({ reason: 0x0c });
  });

  it('a superpage leaf whose address is not aligned to its size faults reason 0x0c', () => {
    const { hw, prog, dom, sid } = rig();
    prog.map(dom, 0x200, 0x3400, 1, RW, 2);
    // rewrite the level-2 leaf (table of level 2 = what the level-3 entry 0 points at) to 0x3401000
    const l3 = hw.memory.readU64(dom.rootPfn * PAGE);
    const l2TablePfn = Number(l3 >> 12n);
    hw.memory.writeQword(l2TablePfn * PAGE + 1 * 8, 0x03401083, 0);
    expect(hw.dmaRead(sid, 0x200000n, 8).fault).toMatchObject({ reason: 0x0c });
  });

  it('a leaf address at or above the host address width faults reason 0x0c', () => {
    const { hw, prog, dom, sid } = rig();
    prog.map(dom, 5, 0x3405, 1, RW);
    // leaf at iova pfn 5 rewritten to phys 2^39 (bit 39 is reserved with aw-bits 39)
    const l3 = hw.memory.readU64(dom.rootPfn * PAGE);
    const l2 = hw.memory.readU64(Number(l3 >> 12n) * PAGE);
    hw.memory.writeQword(Number(l2 >> 12n) * PAGE + 5 * 8, 0x00000003, 0x80);
    expect(hw.dmaRead(sid, 0x5000n, 8).fault).toMatchObject({ reason: 0x0c });
  });
});

describe('permissions', () => {
  it('a read through a write-only page faults reason 6; the write goes through', () => {
    const { hw, prog, dom, sid } = rig();
    prog.map(dom, 0x10, 0x3405, 1, W);
    expect(hw.dmaRead(sid, 0x10000n, 8).fault).toMatchObject({ reason: 6, isRead: true, addr: 0x10000n });
    const w = hw.dmaWrite(sid, 0x10008n, Uint8Array.of(0xaa, 0xbb));
    expect(w).toEqual({ written: 2 });
    expect(hex(hw.memory.read(0x3405008, 3))).toBe('aa bb 40');
  });

  it('a write through a read-only page faults reason 5; the read goes through', () => {
    const { hw, prog, dom, sid } = rig();
    prog.map(dom, 0x11, 0x3405, 1, R);
    expect(hw.dmaWrite(sid, 0x11000n, new Uint8Array(8)).fault).toMatchObject({
      reason: 5,
      isRead: false,
      addr: 0x11000n,
    });
    expect(hw.memory.isMaterialised(0x3405)).toBe(false);
    expect(hex(hw.dmaRead(sid, 0x11000n, 8).data)).toBe('00 50 40 03 00 00 00 a5');
  });

  it('a non-present page faults reason 6 for reads and 5 for writes', () => {
    const { hw, prog, dom, sid } = rig();
    prog.map(dom, 0x12, 0x3405, 1, RW);
    // pfn 0x13 shares the leaf table but its entry is zero
    expect(hw.dmaRead(sid, 0x13000n, 1).fault).toMatchObject({ reason: 6, isRead: true, addr: 0x13000n });
    expect(hw.dmaWrite(sid, 0x13000n, new Uint8Array(1)).fault).toMatchObject({ reason: 5, isRead: false });
    // an iova whose upper-level entries are absent too
    expect(hw.dmaRead(sid, 0x40000000n, 1).fault).toMatchObject({ reason: 6 });
    expect(hw.dmaWrite(sid, 0x40000000n, new Uint8Array(1)).fault).toMatchObject({ reason: 5 });
  });

  it('a read-only page cached in the IOTLB still refuses writes (reason 5)', () => {
    const { hw, prog, dom, sid } = rig();
    prog.map(dom, 0x14, 0x3405, 1, R);
    hw.dmaRead(sid, 0x14000n, 8);
    const hits = hw.counters.iotlbHits;
    expect(hw.dmaWrite(sid, 0x14000n, new Uint8Array(1)).fault).toMatchObject({ reason: 5 });
    expect(hw.counters.iotlbHits).toBe(hits + 1);
  });

  it('the permissions of upper levels are intersected with the leaf', () => {
    const { hw, prog, dom, sid } = rig();
    prog.map(dom, 0x15, 0x3405, 1, RW);
    // make the level-3 entry read-only
    const l3 = hw.memory.readU64(dom.rootPfn * PAGE);
    hw.memory.writeU64(dom.rootPfn * PAGE, l3 & ~2n);
    expect(hw.dmaWrite(sid, 0x15000n, new Uint8Array(1)).fault).toMatchObject({ reason: 5 });
    expect(hex(hw.dmaRead(sid, 0x15000n, 8).data)).toBe('00 50 40 03 00 00 00 a5');
  });
});

/** Write sid's context entry directly (bus 0 context table of the programmer). */
function writeContext(hw: VtdHardware, sid: number, ce: ContextEntry, extra: { lo?: number; highLo?: number } = {}): void {
  const root = hw.memory.readU64(hw.rootTableAddress + (sid >>> 8) * 16);
  const ctxTable = entryPfn(Number(root & 0xffffffffn), Number(root >> 32n));
  const at = ctxTable * PAGE + (sid & 0xff) * 16;
  const { low, high } = encodeContext(ce);
  hw.memory.writeQword(at + 8, (high.lo | (extra.highLo ?? 0)) >>> 0, high.hi);
  hw.memory.writeQword(at, (low.lo | (extra.lo ?? 0)) >>> 0, low.hi);
}

describe('root and context entries', () => {
  it('a device on a bus without a root entry faults reason 1', () => {
    const { hw, prog, dom } = rig();
    prog.map(dom, 0, 0x3405, 1, RW);
    // 01:00.0: bus 1 has no root entry (only bus 0 was attached)
    const r = hw.dmaRead(0x100, 0n, 8);
    expect(r.fault).toMatchObject({ sid: 0x100, reason: 1, isRead: true, addr: 0n });
  });

  it('a present root entry but an absent context entry faults reason 2', () => {
    const { hw, prog, dom } = rig();
    prog.map(dom, 0, 0x3405, 1, RW);
    // 00:03.0 shares bus 0's context table, but its entry is zero
    expect(hw.dmaRead(0x18, 0x7000n, 8).fault).toMatchObject({ sid: 0x18, reason: 2, addr: 0x7000n });
    expect(hw.dmaWrite(0x18, 0x7000n, new Uint8Array(1)).fault).toMatchObject({ reason: 2, isRead: false });
  });

  it('after detach and a context-cache flush the device faults reason 2', () => {
    const { hw, prog, dom, sid } = rig();
    prog.map(dom, 0, 0x3405, 1, RW);
    expect(hw.dmaRead(sid, 0n, 8).fault).toBeUndefined();
    prog.detach(sid);
    prog.flushContextDevice(sid, 0);
    expect(hw.dmaRead(sid, 0n, 8).fault).toMatchObject({ reason: 2 });
  });

  it('an AW the unit does not support (48-bit domain on a 39-bit unit) faults reason 3', () => {
    const { hw, prog, dom, sid } = rig({ agaw: 39 }, { width: 48 });
    expect(dom.aw).toBe(2);
    prog.map(dom, 0, 0x3405, 1, RW);
    expect(hw.dmaRead(sid, 0n, 8).fault).toMatchObject({ reason: 3 });
  });

  it('translation type 3 (reserved) faults reason 3', () => {
    const { hw, prog, dom, sid } = rig();
    prog.map(dom, 0, 0x3405, 1, RW);
    writeContext(hw, sid, { present: true, fpd: false, tt: 3, slptPfn: dom.rootPfn, aw: 1, did: 1 });
    prog.flushContextDevice(sid, 0);
    expect(hw.dmaRead(sid, 0n, 8).fault).toMatchObject({ reason: 3 });
  });

  it('translation type 2 (pass-through) uses the iova as the physical address', () => {
    const { hw, dom, sid, prog } = rig();
    writeContext(hw, sid, { present: true, fpd: false, tt: 2, slptPfn: dom.rootPfn, aw: 1, did: 1 });
    prog.flushContextDevice(sid, 0);
    expect(hex(hw.dmaRead(sid, 0x3405100n, 8).data)).toBe('00 51 40 03 00 00 00 a5');
    expect(hw.dmaRead(sid, 0x8000000000n, 8).fault).toMatchObject({ reason: 4 });
  });

  it('a domain id beyond cap ND faults reason 3', () => {
    const { hw, prog, dom, sid } = rig({ nd: 0 });
    prog.map(dom, 0, 0x3405, 1, RW);
    // ND 0: 16 domain ids
    writeContext(hw, sid, { present: true, fpd: false, tt: 0, slptPfn: dom.rootPfn, aw: 1, did: 16 });
    prog.flushContextDevice(sid, 0);
    expect(hw.dmaRead(sid, 0n, 8).fault).toMatchObject({ reason: 3 });
  });

  // QEMU 7.2 vtd_dev_to_context_entry / vtd_context_entry_rsvd_bits_check; VT-d fault 0Bh
  it('non-zero reserved fields in a present context entry fault reason 0x0b (non-zero reserved fields in CTP)', () => {
    const { hw, prog, dom, sid } = rig();
    prog.map(dom, 0, 0x3405, 1, RW);
    const ce: ContextEntry = { present: true, fpd: false, tt: 0, slptPfn: dom.rootPfn, aw: 1, did: 1 };
    // low qword bit 4 (bits 11:4 are reserved)
    writeContext(hw, sid, ce, { lo: 0x10 });
    prog.flushContextDevice(sid, 0);
    expect(hw.dmaRead(sid, 0n, 8).fault).toMatchObject({ reason: 0x0b });
    // high qword bit 7 (reserved)
    writeContext(hw, sid, ce, { highLo: 0x80 });
    prog.flushContextDevice(sid, 0);
    expect(hw.dmaRead(sid, 0n, 8).fault).toMatchObject({ reason: 0x0b });
  });

  // QEMU 7.2 vtd_root_entry_rsvd_bits_check; VT-d fault 0Ah
  it('non-zero reserved fields in a present root entry fault reason 0x0a (non-zero reserved fields in RTP)', () => {
    const { hw, prog, dom, sid } = rig();
    prog.map(dom, 0, 0x3405, 1, RW);
    const rootAt = hw.rootTableAddress + (sid >>> 8) * 16;
    const re = hw.memory.readU64(rootAt);
    // bit 1 of the low qword: bits 11:1 are reserved in legacy mode
    hw.memory.writeU64(rootAt, re | 0x2n);
    prog.flushContextDevice(sid, 0);
    expect(hw.dmaRead(sid, 0n, 8).fault).toMatchObject({ reason: 0x0a });
  });

  // ecap DT (bit 2) is 0 in 0xf00f4a: TT=01b is then reserved (VT-d spec), and QEMU 7.2's
  // vtd_ce_type_check refuses it ("DT specified but not supported") with VTD_FR_CONTEXT_ENTRY_INV
  it('translation type 1 (device-TLB) without ecap DT faults reason 3', () => {
    const { hw, prog, dom, sid } = rig();
    expect(hw.ecap & 0x4n).toBe(0n);
    prog.map(dom, 0, 0x3405, 1, RW);
    writeContext(hw, sid, { present: true, fpd: false, tt: 1, slptPfn: dom.rootPfn, aw: 1, did: 1 });
    prog.flushContextDevice(sid, 0);
    expect(hw.dmaRead(sid, 0n, 8).fault).toMatchObject({ reason: 3 });
  });

  it('translation disabled: device addresses are physical addresses', () => {
    const { hw, sid } = rig();
    hw.enableTranslation(false);
    expect(hex(hw.dmaRead(sid, 0x3405100n, 8).data)).toBe('00 51 40 03 00 00 00 a5');
  });
});

describe('translation counters', () => {
  it('the second access to the same page is an IOTLB hit with no walk', () => {
    const { hw, prog, dom, sid } = rig();
    prog.map(dom, 0x20, 0x3405, 2, RW);
    expect(hw.counters).toMatchObject({ iotlbHits: 0, iotlbMisses: 0, pageWalks: 0 });
    hw.dmaRead(sid, 0x20000n, 8);
    expect(hw.counters).toMatchObject({ iotlbHits: 0, iotlbMisses: 1, pageWalks: 1 });
    expect(hw.counters).toMatchObject({ contextCacheHits: 0, contextCacheMisses: 1 });
    hw.dmaRead(sid, 0x20800n, 8);
    expect(hw.counters).toMatchObject({ iotlbHits: 1, iotlbMisses: 1, pageWalks: 1 });
    expect(hw.counters).toMatchObject({ contextCacheHits: 1, contextCacheMisses: 1 });
    hw.dmaWrite(sid, 0x20010n, new Uint8Array(4));
    expect(hw.counters).toMatchObject({ iotlbHits: 2, iotlbMisses: 1, pageWalks: 1 });
    // a two-page read: one hit (0x20) and one miss + walk (0x21)
    hw.dmaRead(sid, 0x20ff0n, 0x20);
    expect(hw.counters).toMatchObject({ iotlbHits: 3, iotlbMisses: 2, pageWalks: 2 });
    expect(hw.iotlb.size).toBe(2);
  });

  it('a 2 MiB leaf is cached once for every pfn inside it', () => {
    const { hw, prog, dom, sid } = rig();
    prog.map(dom, 0x200, 0x3400, 1, RW, 2);
    hw.dmaRead(sid, 0x200000n, 8);
    hw.dmaRead(sid, 0x3ff000n, 8);
    hw.dmaRead(sid, 0x2ab000n, 8);
    expect(hw.counters).toMatchObject({ iotlbHits: 2, iotlbMisses: 1, pageWalks: 1 });
    expect(hw.iotlb.size).toBe(1);
  });

  it('faulting walks are not cached: every retry walks again', () => {
    const { hw, sid } = rig();
    hw.dmaRead(sid, 0x5000n, 8);
    hw.dmaRead(sid, 0x5000n, 8);
    expect(hw.counters).toMatchObject({ iotlbHits: 0, iotlbMisses: 2, pageWalks: 2 });
    expect(hw.iotlb.size).toBe(0);
  });

  it('a second device of the same domain shares the IOTLB entries (tagged by domain id)', () => {
    const { hw, prog, dom, sid } = rig();
    prog.attach(0x18, dom);
    prog.flushContextDevice(0x18, 0);
    prog.map(dom, 0x30, 0x3405, 1, RW);
    hw.dmaRead(sid, 0x30000n, 8);
    const r = hw.dmaRead(0x18, 0x30000n, 8);
    expect(hex(r.data)).toBe('00 50 40 03 00 00 00 a5');
    expect(hw.counters).toMatchObject({ iotlbHits: 1, pageWalks: 1 });
  });
});

describe('the programmer itself', () => {
  it('allocates root, queue, status and domain tables from the start of the page-table region', () => {
    const { hw, dom } = rig();
    expect(hw.rootTableAddress).toBe(0x7f00000000);
    expect(hw.queueBase).toBe(0x7f00001000);
    expect(dom.rootPfn).toBe(0x7f00003);
  });

  it('without QI there is no queue page: the domain root follows root and status pages', () => {
    const { hw, dom } = rig({ qi: false });
    expect(hw.queuedInvalidationEnabled).toBe(false);
    expect(dom.rootPfn).toBe(0x7f00002);
  });
});
