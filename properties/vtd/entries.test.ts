/**
 * In-memory structure encodings (kernel-semantics 5.1 and 5.3): second-level PTEs, root and
 * context entries, and source ids.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  bigIntToQword,
  decodeContext,
  encodeContext,
  entryPfn,
  formatBdf,
  makePte,
  makeRootEntry,
  numberToQword,
  parseBdf,
  pteAttrs,
  pteIsPresent,
  pteIsSuperpage,
  qwordToBigInt,
  sourceId,
} from '../../vtd/entries.js';

describe('second-level PTEs', () => {
  it('R is bit 0, W bit 1, PS bit 7, SNP bit 11, the address in bits 51:12', () => {
    expect(makePte(0x3405, 1)).toEqual({ lo: 0x03405001, hi: 0 });
    expect(makePte(0x3405, 2)).toEqual({ lo: 0x03405002, hi: 0 });
    expect(makePte(0x3405, 0x80)).toEqual({ lo: 0x03405080, hi: 0 });
    expect(makePte(0x3405, 0x800)).toEqual({ lo: 0x03405800, hi: 0 });
    expect(qwordToBigInt(makePte(0x3405, 0x883))).toBe(0x3405883n);
  });

  it('pfns whose byte address is above 2^32 split across both dwords', () => {
    // pfn 0xfffffffff → address 0xfffffffff000
    expect(makePte(0xfffffffff, 3)).toEqual({ lo: 0xfffff003, hi: 0xffff });
    expect(qwordToBigInt(makePte(0xfffffffff, 3))).toBe(0xfffffffff003n);
    expect(entryPfn(0xfffff003, 0xffff)).toBe(0xfffffffff);
    // the widest address field: pfn 2^40 - 1 → address bits 51:12 all set
    expect(qwordToBigInt(makePte(0xffffffffff, 0x883))).toBe(0xffffffffff883n);
    expect(entryPfn(0xfffff883, 0xfffff)).toBe(0xffffffffff);
    // 0x12345678 → address 0x12345678000
    expect(makePte(0x12345678, 0x82)).toEqual({ lo: 0x45678082, hi: 0x123 });
  });

  it('entryPfn ignores the attribute bits and bits 63:52', () => {
    expect(entryPfn(0x03405fff, 0)).toBe(0x3405);
    // bits 52..63 set in the high dword (QEMU: ignored / TM / reserved, never address)
    expect(entryPfn(0x03405003, 0xfff00000)).toBe(0x3405);
    expect(entryPfn(0x03405003, 0x40000000)).toBe(0x3405);
  });

  it('attribute decoding', () => {
    expect(pteAttrs(0x1)).toEqual({ r: true, w: false, ps: false, snp: false });
    expect(pteAttrs(0x2)).toEqual({ r: false, w: true, ps: false, snp: false });
    expect(pteAttrs(0x80)).toEqual({ r: false, w: false, ps: true, snp: false });
    expect(pteAttrs(0x800)).toEqual({ r: false, w: false, ps: false, snp: true });
    expect(pteAttrs(0xfffff883)).toEqual({ r: true, w: true, ps: true, snp: true });
    expect(pteAttrs(0x77c)).toEqual({ r: false, w: false, ps: false, snp: false });
  });

  it('an entry is present iff R or W is set (there is no separate present bit)', () => {
    expect(pteIsPresent(0)).toBe(false);
    expect(pteIsPresent(0x03405880)).toBe(false);
    expect(pteIsPresent(1)).toBe(true);
    expect(pteIsPresent(2)).toBe(true);
    expect(pteIsSuperpage(0x80)).toBe(true);
    expect(pteIsSuperpage(0x803)).toBe(false);
  });

  it('encode/decode round trip: value = pfn << 12 | attrs for every pfn < 2^40', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 40 - 1 }), fc.integer({ min: 0, max: 0xfff }), (pfn, attrs) => {
        const q = makePte(pfn, attrs);
        expect(qwordToBigInt(q)).toBe((BigInt(pfn) << 12n) | BigInt(attrs));
        expect(entryPfn(q.lo, q.hi)).toBe(pfn);
        expect(pteAttrs(q.lo)).toEqual({
          r: (attrs & 1) !== 0,
          w: (attrs & 2) !== 0,
          ps: (attrs & 0x80) !== 0,
          snp: (attrs & 0x800) !== 0,
        });
      }),
      { seed: 42, numRuns: 300 },
    );
  });

  it('qword helpers split 64-bit values', () => {
    expect(bigIntToQword(0xfedcba9876543210n)).toEqual({ lo: 0x76543210, hi: 0xfedcba98 });
    expect(qwordToBigInt({ lo: 0xffffffff, hi: 0xffffffff })).toBe(0xffffffffffffffffn);
    expect(numberToQword(0x7f00001000)).toEqual({ lo: 0x00001000, hi: 0x7f });
    expect(numberToQword(2 ** 52 - 1)).toEqual({ lo: 0xffffffff, hi: 0xfffff });
  });
});

describe('root entries', () => {
  it('present bit 0 and the context-table pointer in bits 63:12', () => {
    expect(makeRootEntry(0x7f00001)).toEqual({ lo: 0x00001001, hi: 0x7f });
    expect(qwordToBigInt(makeRootEntry(0x7f00001))).toBe(0x7f00001001n);
    expect(qwordToBigInt(makeRootEntry(0))).toBe(1n);
  });
});

describe('context entries (legacy mode)', () => {
  it('low qword: P bit 0, FPD bit 1, TT bits 3:2, SLPTPTR 63:12; high: AW 2:0, DID 23:8', () => {
    const a = encodeContext({ present: true, fpd: false, tt: 0, slptPfn: 0x7f00003, aw: 1, did: 4 });
    expect(qwordToBigInt(a.low)).toBe(0x7f00003001n);
    expect(qwordToBigInt(a.high)).toBe(0x401n);

    const b = encodeContext({ present: true, fpd: true, tt: 2, slptPfn: 0xfffffffff, aw: 3, did: 0xffff });
    expect(qwordToBigInt(b.low)).toBe(0xfffffffff00bn);
    expect(qwordToBigInt(b.high)).toBe(0xffff03n);

    const c = encodeContext({ present: true, fpd: false, tt: 1, slptPfn: 0x7f00010, aw: 2, did: 0x1234 });
    expect(qwordToBigInt(c.low)).toBe(0x7f00010005n);
    expect(qwordToBigInt(c.high)).toBe(0x123402n);

    const none = encodeContext({ present: false, fpd: false, tt: 0, slptPfn: 0, aw: 0, did: 0 });
    expect(qwordToBigInt(none.low)).toBe(0n);
    expect(qwordToBigInt(none.high)).toBe(0n);
  });

  it('decode(encode(ce)) = ce for did up to 0xffff, aw 1/2/3, tt 0/1/2', () => {
    const ceArb = fc.record({
      present: fc.boolean(),
      fpd: fc.boolean(),
      tt: fc.constantFrom(0, 1, 2),
      slptPfn: fc.integer({ min: 0, max: 2 ** 40 - 1 }),
      aw: fc.constantFrom(1, 2, 3),
      did: fc.oneof(fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff })),
    });
    fc.assert(
      fc.property(ceArb, (ce) => {
        const { low, high } = encodeContext(ce);
        expect(decodeContext(low, high)).toEqual({ ...ce, reservedBitsSet: false });
      }),
      { seed: 42, numRuns: 300 },
    );
  });

  it('decoding a literal did 0xffff / aw 3 / tt 2 entry', () => {
    expect(decodeContext({ lo: 0x0000100b, hi: 0x7f }, { lo: 0x00ffff03, hi: 0 })).toEqual({
      present: true,
      fpd: true,
      tt: 2,
      slptPfn: 0x7f00001,
      aw: 3,
      did: 0xffff,
      reservedBitsSet: false,
    });
  });

  it('reserved bits: low 11:4, high bit 7, high 63:24', () => {
    const hiOk = { lo: 0x401, hi: 0 };
    expect(decodeContext({ lo: 0x1011, hi: 0 }, hiOk).reservedBitsSet).toBe(true);
    expect(decodeContext({ lo: 0x1801, hi: 0 }, hiOk).reservedBitsSet).toBe(true);
    const loOk = { lo: 0x1001, hi: 0 };
    expect(decodeContext(loOk, { lo: 0x481, hi: 0 }).reservedBitsSet).toBe(true);
    expect(decodeContext(loOk, { lo: 0x01000401, hi: 0 }).reservedBitsSet).toBe(true);
    expect(decodeContext(loOk, { lo: 0x401, hi: 1 }).reservedBitsSet).toBe(true);
    // bits 6:3 of the high qword are available to software, not reserved
    expect(decodeContext(loOk, { lo: 0x479, hi: 0 }).reservedBitsSet).toBe(false);
  });
});

describe('source ids and bdf strings', () => {
  it('bus << 8 | dev << 3 | fn', () => {
    expect(sourceId(0, 2, 0)).toBe(0x10);
    expect(sourceId(0xff, 0x1f, 7)).toBe(0xffff);
    expect(sourceId(1, 0, 0)).toBe(0x100);
  });

  it('parseBdf reads "bb:dd.f" (hex bus and device, decimal function)', () => {
    expect(parseBdf('00:02.0')).toBe(0x10);
    expect(parseBdf('ff:1f.7')).toBe(0xffff);
    expect(parseBdf('00:1f.7')).toBe(0xff);
    expect(parseBdf('01:00.0')).toBe(0x100);
    expect(parseBdf('0a:1b.3')).toBe(0xadb);
    expect(parseBdf('0A:1B.3')).toBe(0xadb);
  });

  it('parseBdf refuses malformed strings and out-of-range fields', () => {
    for (const bad of ['00:20.0', '00:02.8', '0:02.0', '00:02', '00:2.0', 'gg:00.0', ' 00:02.0', '00:02.0 ', '000:02.0', '']) {
      expect(parseBdf(bad)).toBeUndefined();
    }
  });

  it('formatBdf prints %02x:%02x.%d', () => {
    expect(formatBdf(0x10)).toBe('00:02.0');
    expect(formatBdf(0xffff)).toBe('ff:1f.7');
    expect(formatBdf(0xadb)).toBe('0a:1b.3');
    expect(formatBdf(0x100)).toBe('01:00.0');
  });

  it('every source id round-trips through its string', () => {
    for (let sid = 0; sid <= 0xffff; sid++) {
      const s = formatBdf(sid);
      if (!/^[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/.test(s) || parseBdf(s) !== sid) {
        expect.fail(`sid 0x${sid.toString(16)} printed as ${s}, parsed back as ${String(parseBdf(s))}`);
      }
    }
    expect(formatBdf(0xfff8)).toBe('ff:1f.0');
  });
});
