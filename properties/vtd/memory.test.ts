/**
 * Simulated physical memory: the self-describing pattern, byte-granular access across pages,
 * fill/copy, 64-bit accessors and lazy materialisation.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PhysMemory } from '../../vtd/memory.js';
import { bytes, hex, patternBytes } from './helpers.js';

describe('the self-describing pattern', () => {
  it('the word at 0x3405100 reads 00 51 40 03 00 00 00 a5 (0xA5 << 56 | p, little-endian)', () => {
    const m = new PhysMemory();
    expect(hex(m.read(0x3405100, 8))).toBe('00 51 40 03 00 00 00 a5');
    expect(m.readU64(0x3405100)).toBe(0xa500000003405100n);
  });

  it('the helper used as the oracle agrees with the literal example', () => {
    expect(hex(patternBytes(0x3405100, 8))).toBe('00 51 40 03 00 00 00 a5');
  });

  it('unaligned reads take the bytes of the words they straddle', () => {
    const m = new PhysMemory();
    // bytes 6..7 of word 0x3405100, then bytes 0..1 of word 0x3405108
    expect(hex(m.read(0x3405106, 4))).toBe('00 a5 08 51');
    // a single byte: byte 2 of word 0x3405108 is bits 23:16 of the address = 0x40
    expect(hex(m.read(0x340510a, 1))).toBe('40');
  });

  it('a read spanning a page boundary of unwritten memory joins both pages', () => {
    const m = new PhysMemory();
    // high dword of word 0x3405ff8, then low dword of word 0x3406000
    expect(hex(m.read(0x3405ffc, 8))).toBe('00 00 00 a5 00 60 40 03');
  });

  it('addresses above 4 GiB put address bits 51:32 under the 0xA5 tag', () => {
    const m = new PhysMemory();
    expect(hex(m.read(0x1234567890, 8))).toBe('90 78 56 34 12 00 00 a5');
    expect(m.readU64(0x1234567890)).toBe(0xa500001234567890n);
  });

  it('high addresses near 2^39 and at the top of the 52-bit space', () => {
    const m = new PhysMemory();
    expect(hex(m.read(0x7ffffffff8, 8))).toBe('f8 ff ff ff 7f 00 00 a5');
    expect(m.readU64(0x7ffffffff8)).toBe(0xa500007ffffffff8n);
    // a read crossing 2^39
    expect(hex(m.read(0x7ffffffffc, 8))).toBe('7f 00 00 a5 00 00 00 00');
    expect(m.readU64(0x8000000000)).toBe(0xa500008000000000n);
    expect(hex(m.read(2 ** 52 - 8, 8))).toBe('f8 ff ff ff ff ff 0f a5');
    expect(m.readU64(2 ** 52 - 8)).toBe(0xa50ffffffffffff8n);
  });

  it('addresses outside the 52-bit machine are refused', () => {
    const m = new PhysMemory();
    expect(() => m.read(2 ** 52 - 4, 8)).toThrow(RangeError);
    expect(() => m.read(-8, 8)).toThrow(RangeError);
    expect(() => m.read(1.5, 1)).toThrow(RangeError);
    expect(() => m.write(2 ** 52, bytes(1))).toThrow(RangeError);
    expect(() => m.fill(2 ** 52 - 1, 2, 0)).toThrow(RangeError);
  });

  it('the static patternByte agrees with the spec pattern at arbitrary addresses', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 52 - 1 }), (a) => {
        expect(PhysMemory.patternByte(a)).toBe(patternBytes(a, 1)[0]);
      }),
      { seed: 42, numRuns: 300 },
    );
  });

  it('unwritten reads anywhere equal the spec pattern', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 52 - 9000 }), fc.integer({ min: 0, max: 9000 }), (a, len) => {
        const m = new PhysMemory();
        expect(hex(m.read(a, len))).toBe(hex(patternBytes(a, len)));
      }),
      { seed: 42, numRuns: 100 },
    );
  });
});

describe('materialisation', () => {
  it('reads of unwritten pages do not materialise them', () => {
    const m = new PhysMemory();
    m.read(0x3405000, 3 * 4096);
    m.readU64(0x7ffffffff8);
    const scratch = new Uint32Array(2);
    m.readQword(0x1234567890, scratch);
    expect(scratch[0]).toBe(0x34567890);
    expect(scratch[1]).toBe(0xa5000012);
    const out = new Uint8Array(16);
    m.readInto(0x3406ff8, out, 0, 16);
    expect(m.materialisedPages).toBe(0);
    expect(m.isMaterialised(0x3405)).toBe(false);
    expect(m.isMaterialised(0x3406)).toBe(false);
  });

  it('a write materialises exactly the pages it touches, and the rest of them keep the pattern', () => {
    const m = new PhysMemory();
    m.write(0x3405ffe, bytes(1, 2, 3, 4));
    expect(m.materialisedPages).toBe(2);
    expect(m.isMaterialised(0x3405)).toBe(true);
    expect(m.isMaterialised(0x3406)).toBe(true);
    expect(m.isMaterialised(0x3407)).toBe(false);
    expect(hex(m.read(0x3405ff8, 16))).toBe('f8 5f 40 03 00 00 01 02 03 04 40 03 00 00 00 a5');
    expect(hex(m.read(0x3405000, 8))).toBe('00 50 40 03 00 00 00 a5');
    expect(hex(m.read(0x3406ff8, 8))).toBe('f8 6f 40 03 00 00 00 a5');
  });

  it('zero-length writes and fills materialise nothing', () => {
    const m = new PhysMemory();
    m.write(0x3405000, new Uint8Array(0));
    m.fill(0x3405000, 0, 0xff);
    m.copy(0x3405000, 0x5000000, 0);
    expect(m.materialisedPages).toBe(0);
  });
});

describe('byte-granular writes', () => {
  it('single bytes land where written and nowhere else', () => {
    const m = new PhysMemory();
    m.write(0x3405103, bytes(0xee));
    expect(hex(m.read(0x3405100, 8))).toBe('00 51 40 ee 00 00 00 a5');
    expect(m.readU64(0x3405100)).toBe(0xa5000000ee405100n);
  });

  it('random writes then reads agree with a byte-map reference over a window spanning pages', () => {
    const base = 0x3404f00;
    const span = 3 * 4096;
    const writeArb = fc.record({
      off: fc.integer({ min: 0, max: span - 1 }),
      data: fc.uint8Array({ minLength: 0, maxLength: 5000 }),
    });
    fc.assert(
      fc.property(fc.array(writeArb, { maxLength: 8 }), fc.integer({ min: 0, max: span }), (writes, readOff) => {
        const m = new PhysMemory();
        const ref = patternBytes(base, span + 5000);
        for (const w of writes) {
          m.write(base + w.off, w.data);
          ref.set(w.data, w.off);
        }
        const len = span - readOff;
        expect(hex(m.read(base + readOff, len))).toBe(hex(ref.subarray(readOff, readOff + len)));
      }),
      { seed: 42, numRuns: 100 },
    );
  });
});

describe('fill and copy', () => {
  it('fill crosses a page boundary and keeps only the low 8 bits of the value', () => {
    const m = new PhysMemory();
    m.fill(0x3405ff0, 0x20, 0x1ab);
    const got = m.read(0x3405fe8, 0x30);
    expect(hex(got.subarray(0, 8))).toBe('e8 5f 40 03 00 00 00 a5');
    expect(Array.from(got.subarray(8, 0x28)).every((b) => b === 0xab)).toBe(true);
    expect(hex(got.subarray(0x28))).toBe('10 60 40 03 00 00 00 a5');
    expect(m.materialisedPages).toBe(2);
  });

  it('copy moves pattern bytes across page boundaries without materialising the source', () => {
    const m = new PhysMemory();
    m.copy(0x5000ffc, 0x3405ffa, 10);
    // bytes 2..7 of word 0x3405ff8, then bytes 0..3 of word 0x3406000
    expect(hex(m.read(0x5000ffc, 10))).toBe('40 03 00 00 00 a5 00 60 40 03');
    expect(m.isMaterialised(0x3405)).toBe(false);
    expect(m.isMaterialised(0x3406)).toBe(false);
    expect(m.isMaterialised(0x5000)).toBe(true);
    expect(m.isMaterialised(0x5001)).toBe(true);
    // the bytes just outside the copy keep the destination's own pattern
    expect(hex(m.read(0x5000ff8, 4))).toBe('f8 0f 00 05');
    expect(hex(m.read(0x5001006, 2))).toBe('00 a5');
  });

  it('copy carries written bytes', () => {
    const m = new PhysMemory();
    m.write(0x3405000, bytes(9, 8, 7));
    m.copy(0x6000001, 0x3405000, 3);
    expect(hex(m.read(0x6000000, 5))).toBe('00 09 08 07 00');
  });
});

describe('64-bit accessors', () => {
  it('values above 2^53 survive writeU64/readU64 exactly, stored little-endian', () => {
    const m = new PhysMemory();
    m.writeU64(0x3405100, 0xfedcba9876543210n);
    expect(m.readU64(0x3405100)).toBe(0xfedcba9876543210n);
    expect(hex(m.read(0x3405100, 8))).toBe('10 32 54 76 98 ba dc fe');
    m.writeU64(0x7ffffffff8, 0x8000000000000001n);
    expect(m.readU64(0x7ffffffff8)).toBe(0x8000000000000001n);
    expect(hex(m.read(0x7ffffffff8, 8))).toBe('01 00 00 00 00 00 00 80');
    m.writeU64(0x3405108, 0xffffffffffffffffn);
    expect(m.readU64(0x3405108)).toBe(0xffffffffffffffffn);
    // the neighbouring words are untouched
    expect(m.readU64(0x34050f8)).toBe(0xa5000000034050f8n);
    expect(m.readU64(0x3405110)).toBe(0xa500000003405110n);
  });

  it('writeQword/readQword carry the two dwords', () => {
    const m = new PhysMemory();
    m.writeQword(0x3405200, 0xdeadbeef, 0xcafef00d);
    expect(m.readU64(0x3405200)).toBe(0xcafef00ddeadbeefn);
    expect(hex(m.read(0x3405200, 8))).toBe('ef be ad de 0d f0 fe ca');
  });

  it('any 64-bit value round-trips and reads back as its little-endian bytes', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.integer({ min: 0, max: 2 ** 49 - 1 }), (v, word) => {
        const m = new PhysMemory();
        const addr = word * 8;
        m.writeU64(addr, v);
        expect(m.readU64(addr)).toBe(v);
        const expected = new Uint8Array(8);
        for (let i = 0; i < 8; i++) expected[i] = Number((v >> BigInt(8 * i)) & 0xffn);
        expect(hex(m.read(addr, 8))).toBe(hex(expected));
      }),
      { seed: 42, numRuns: 200 },
    );
  });
});

describe('page-table write stamps (the caching-mode bookkeeping)', () => {
  it('writes inside the page-table region advance the write sequence, writes elsewhere do not', () => {
    const m = new PhysMemory();
    expect(m.writeSeq).toBe(0);
    m.write(0x3405000, bytes(1));
    expect(m.writeSeq).toBe(0);
    expect(m.writeSeqOf(0x3405000)).toBe(0);
    m.writeQword(0x7f00000010, 1, 0);
    expect(m.writeSeq).toBe(1);
    expect(m.writeSeqOf(0x7f00000010)).toBe(1);
    expect(m.writeSeqOf(0x7f00000018)).toBe(0);
    m.writeU64(0x7f00000018, 5n);
    expect(m.writeSeqOf(0x7f00000018)).toBe(2);
    expect(m.writeSeqOf(0x7f00000010)).toBe(1);
  });
});

describe('comparisons and views in place', () => {
  // four pages around a base, some written on one memory, some on the other
  const BASE = 0x3400000;
  const opArb = fc.record({ side: fc.constantFrom(0, 1), at: fc.integer({ min: 0, max: 4 * 4096 - 16 }), fill: fc.integer({ min: 0, max: 255 }), len: fc.integer({ min: 1, max: 16 }) });

  it('sameBytes answers as comparing copies does, across written and pattern pages, two memories or one', () => {
    // b anywhere, or at a's offset in another page (where two pattern pages differ only by page)
    const pairArb = fc.integer({ min: 0, max: 3 * 4096 }).chain((a) => fc.tuple(fc.constant(a), fc.oneof(fc.integer({ min: 0, max: 3 * 4096 }), fc.integer({ min: -3, max: 3 }).map((k) => a % 4096 + ((Math.floor(a / 4096) + k + 4) % 4) * 4096))));
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 12 }), pairArb, fc.integer({ min: 1, max: 4096 }), fc.boolean(), (ops, [a, b], len, one) => {
        const m0 = new PhysMemory();
        const m1 = one ? m0 : new PhysMemory();
        for (const o of ops) (o.side === 0 ? m0 : m1).fill(BASE + o.at, o.len, o.fill);
        const want = Buffer.compare(m0.read(BASE + a, len), m1.read(BASE + b, len)) === 0;
        expect(m0.sameBytes(BASE + a, m1, BASE + b, len)).toBe(want);
      }),
      { seed: 52, numRuns: 400 },
    );
  });

  it('pageBytes is the page as read, written or not', () => {
    const m = new PhysMemory();
    m.fill(0x3401010, 8, 0x5a);
    expect(Buffer.compare(m.pageBytes(0x3401), m.read(0x3401000, 4096))).toBe(0);
    expect(Buffer.compare(m.pageBytes(0x3402), patternBytes(0x3402000, 4096))).toBe(0);
  });
});
