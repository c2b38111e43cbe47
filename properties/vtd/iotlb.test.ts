/**
 * IOTLB behaviour (kernel-semantics 5.5, 7.5, 9.5.7; shared/oracle/README.md): cached
 * translations outlive page-table changes until an invalidation covers them; what each
 * invalidation covers; the bounded IOTLB's replacement. The invalidation interfaces themselves
 * are in invalidation.test.ts, the context cache in context-cache.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { A, A_WORD, B, B_WORD, PAGE, R, RW, hex, iovaOf, patternBytes, read8, rig, type Rig } from './helpers.js';

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
