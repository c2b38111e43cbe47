/**
 * The reserved bits of legacy-mode root and context entries, as regs.ts names them after QEMU's
 * VTD_ROOT_ENTRY_RSVD(aw), VTD_CONTEXT_ENTRY_RSVD_LO(aw) and VTD_CONTEXT_ENTRY_RSVD_HI (VT-d
 * 9.1 and 9.3): one bit of each named field set in an otherwise valid entry faults with the
 * entry's reserved-field reason, 0x0a for the root entry and 0x0b for the context entry; the
 * fields next to them do not. Bit positions are the specification's, counted over the 128-bit
 * entry (0..63 the low qword, 64..127 the high one).
 */
import { describe, expect, it } from 'vitest';
import type { Agaw } from '../../vtd/caps.js';
import {
  VTD_CONTEXT_ENTRY_RSVD_HI_DW2,
  VTD_CONTEXT_ENTRY_RSVD_HI_DW3,
  VTD_CONTEXT_ENTRY_RSVD_LO_DW0,
  VTD_ROOT_ENTRY_RSVD_DW0,
  VTD_ROOT_ENTRY_RSVD_DW1,
  VTD_ROOT_ENTRY_RSVD_DW2,
  VTD_ROOT_ENTRY_RSVD_DW3,
} from '../../vtd/regs.js';
import { RW, rig, type Rig } from './helpers.js';

/** A rig whose device reads its page 0 without a fault: the entries are valid to start with. */
function validRig(agaw: Agaw): Rig {
  const r = rig({ agaw });
  r.prog.map(r.dom, 0, 0x3405, 1, RW);
  expect(r.hw.dmaRead(r.sid, 0n, 8).fault).toBeUndefined();
  return r;
}

/** Set one bit (0..127) of the 16-byte entry at addr. */
function setEntryBit(r: Rig, addr: number, bit: number): void {
  const at = addr + (bit >= 64 ? 8 : 0);
  const s = new Uint32Array(2);
  r.hw.memory.readQword(at, s);
  const word = (bit >> 5) & 1;
  s[word] = (s[word]! | (1 << (bit & 31))) >>> 0;
  r.hw.memory.writeQword(at, s[0]!, s[1]!);
}

/** The fault reason of the device's read after bit is set in its root entry (0: no fault). */
function rootBitFault(bit: number, agaw: Agaw = 48): number {
  const r = validRig(agaw);
  setEntryBit(r, r.hw.rootTableAddress + (r.sid >>> 8) * 16, bit);
  r.prog.flushContextDevice(r.sid, 0);
  return r.hw.dmaRead(r.sid, 0n, 8).fault?.reason ?? 0;
}

/** The same for a bit of its context entry. */
function contextBitFault(bit: number, agaw: Agaw = 48): number {
  const r = validRig(agaw);
  const root = r.hw.memory.readU64(r.hw.rootTableAddress + (r.sid >>> 8) * 16);
  // the context-table pointer: root entry bits 51:12
  const ctxTable = Number((root >> 12n) & 0xffffffffffn) * 4096;
  setEntryBit(r, ctxTable + (r.sid & 0xff) * 16, bit);
  r.prog.flushContextDevice(r.sid, 0);
  return r.hw.dmaRead(r.sid, 0n, 8).fault?.reason ?? 0;
}

describe('the named masks are the specification fields', () => {
  it('root entry: bits 11:1 and 63:52 of the low qword, the whole high qword', () => {
    expect(VTD_ROOT_ENTRY_RSVD_DW0).toBe(0x0000_0ffe);
    expect(VTD_ROOT_ENTRY_RSVD_DW1).toBe(0xfff0_0000);
    expect(VTD_ROOT_ENTRY_RSVD_DW2).toBe(0xffff_ffff);
    expect(VTD_ROOT_ENTRY_RSVD_DW3).toBe(0xffff_ffff);
  });

  it('context entry: bits 11:4 of the low qword; bit 7, bits 31:24 and 63:32 of the high qword', () => {
    expect(VTD_CONTEXT_ENTRY_RSVD_LO_DW0).toBe(0x0000_0ff0);
    // QEMU's VTD_CONTEXT_ENTRY_RSVD_HI is 0xffffffffff000080
    expect(VTD_CONTEXT_ENTRY_RSVD_HI_DW2).toBe(0xff00_0080);
    expect(VTD_CONTEXT_ENTRY_RSVD_HI_DW3).toBe(0xffff_ffff);
  });
});

// QEMU 7.2 vtd_root_entry_rsvd_bits_check; VT-d fault 0Ah
describe('a reserved bit of a present root entry faults reason 0x0a', () => {
  it.each([
    ['VTD_ROOT_ENTRY_RSVD_DW0 (bits 11:1)', [1, 6, 11]],
    ['VTD_ROOT_ENTRY_RSVD_DW1 (bits 63:52)', [52, 57, 63]],
    ['VTD_ROOT_ENTRY_RSVD_DW2 (high qword, bits 31:0)', [64, 80, 95]],
    ['VTD_ROOT_ENTRY_RSVD_DW3 (high qword, bits 63:32)', [96, 112, 127]],
  ] as const)('%s', (_field, bits) => {
    for (const bit of bits) expect(rootBitFault(bit), `bit ${bit}`).toBe(0x0a);
  });

  it('context-table pointer bits at or above HAW (~VTD_HAW_MASK): 48 on a 48-bit unit, 39 and 47 on a 39-bit one', () => {
    expect(rootBitFault(48, 48)).toBe(0x0a);
    expect(rootBitFault(51, 48)).toBe(0x0a);
    expect(rootBitFault(39, 39)).toBe(0x0a);
    expect(rootBitFault(47, 39)).toBe(0x0a);
  });

  it('below HAW the bits are the address: the pointer moves to memory without a present context entry (reason 2)', () => {
    expect(rootBitFault(47, 48)).toBe(2);
    expect(rootBitFault(51, 57)).toBe(2);
    expect(rootBitFault(40, 48)).toBe(2);
  });
});

// QEMU 7.2 vtd_context_entry_rsvd_bits_check; VT-d fault 0Bh
describe('a reserved bit of a present context entry faults reason 0x0b', () => {
  it.each([
    ['VTD_CONTEXT_ENTRY_RSVD_LO_DW0 (bits 11:4)', [4, 8, 11]],
    ['VTD_CONTEXT_ENTRY_RSVD_HI_DW2 (high qword bit 7, bits 31:24)', [71, 88, 95]],
    ['VTD_CONTEXT_ENTRY_RSVD_HI_DW3 (high qword, bits 63:32)', [96, 112, 127]],
  ] as const)('%s', (_field, bits) => {
    for (const bit of bits) expect(contextBitFault(bit), `bit ${bit}`).toBe(0x0b);
  });

  it('second-level table pointer bits at or above HAW: 48 on a 48-bit unit, 39 on a 39-bit one', () => {
    expect(contextBitFault(48, 48)).toBe(0x0b);
    expect(contextBitFault(39, 39)).toBe(0x0b);
  });

  it('the fields beside them are not reserved: high qword bits 6:3 (available) are ignored', () => {
    for (const bit of [67, 68, 69, 70]) expect(contextBitFault(bit), `bit ${bit}`).toBe(0);
  });
});
