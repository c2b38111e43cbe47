/**
 * The context cache (kernel-semantics 5.5): a changed context entry is not seen until a
 * context-cache invalidation covers the device (device-selective with its function mask,
 * domain-selective by the cached domain id, or global).
 */
import { describe, expect, it } from 'vitest';
import type { DomainTables } from '../../testbench/vtd-program.js';
import { A, A_WORD, B, B_WORD, RW, read8, rig, type Rig } from './helpers.js';

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
