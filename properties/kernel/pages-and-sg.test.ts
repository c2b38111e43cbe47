/**
 * kernel/page-alloc.ts (the buddy allocator for coherent buffers), kernel/scatterlist.ts and
 * kernel/log.ts (printk once / ratelimit, lib/ratelimit.c ___ratelimit).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SimClock } from '../../kernel/clock.js';
import { DMA_MAPPING_ERROR } from '../../kernel/device.js';
import { KernelLog, RateLimit } from '../../kernel/log.js';
import { MAX_ORDER, PageAllocator, getOrder } from '../../kernel/page-alloc.js';
import { sgDmaUnused, sgFromBuffers, sgFromPages, sgNext, sgPhys } from '../../kernel/scatterlist.js';
import { PhysMemory } from '../../vtd/memory.js';

/** COHERENT_REGION: 0x60000000-0x70000000, i.e. pfns 0x60000-0x6ffff (64 blocks of order 10) */
const BASE = 0x60000;
const END = 0x70000;

function allZero(b: Uint8Array): boolean {
  return b.every((x) => x === 0);
}

/**
 * Memory that records fill() calls instead of writing megabytes: for the tests that allocate
 * whole 4 MiB blocks many times. Real zeroing is checked with a real PhysMemory below.
 */
class FillRecorder extends PhysMemory {
  readonly fills: Array<[number, number, number]> = [];
  override fill(addr: number, len: number, value: number): void {
    this.fills.push([addr, len, value]);
  }
}

describe('PageAllocator', () => {
  it('hands out the lowest block of the smallest order that has one, splitting larger blocks', () => {
    const a = new PageAllocator(new PhysMemory());
    expect(MAX_ORDER).toBe(11);
    // the first order-0 request splits 0x60000/10 into 0x60000 + buddies 0x60001/0, 0x60002/1, ...
    expect(a.allocPages(0)).toBe(0x60000);
    expect(a.allocPages(0)).toBe(0x60001);
    expect(a.allocPages(1)).toBe(0x60002);
    expect(a.allocPages(2)).toBe(0x60004);
    expect(a.allocPages(0)).toBe(0x60008);
    expect(a.allocPages(3)).toBe(0x60010);
    expect(a.allocPages(10)).toBe(0x60400);
    expect(a.allocatedPages).toBe(1 + 1 + 2 + 4 + 1 + 8 + 1024);
  });

  it('blocks are zeroed when allocated, even after the previous owner wrote them', () => {
    const mem = new PhysMemory();
    const a = new PageAllocator(mem);
    // unwritten memory is the non-zero pattern
    expect(allZero(mem.read(BASE * 4096, 64))).toBe(false);
    const p = a.allocPages(2);
    expect(allZero(mem.read(p * 4096, 4 * 4096))).toBe(true);
    mem.write(p * 4096 + 100, Uint8Array.from([1, 2, 3]));
    a.freePages(p, 2);
    const q = a.allocPages(2);
    expect(q).toBe(p);
    expect(allZero(mem.read(q * 4096, 4 * 4096))).toBe(true);
  });

  it('merges buddies on free: after freeing everything, 64 blocks of order 10 come back in order, then -1', () => {
    const a = new PageAllocator(new FillRecorder());
    const got: Array<[number, number]> = [];
    for (const o of [0, 3, 1, 0, 2, 5, 0, 4]) got.push([a.allocPages(o), o]);
    for (const [p, o] of got.reverse()) a.freePages(p, o);
    expect(a.allocatedPages).toBe(0);
    const blocks: number[] = [];
    for (let i = 0; i < 64; i++) blocks.push(a.allocPages(10));
    expect(blocks).toEqual(Array.from({ length: 64 }, (_, i) => BASE + i * 1024));
    expect(a.allocPages(0)).toBe(-1);
  });

  it('random alloc/free: blocks are order-aligned, disjoint, inside the region; everything merges back', () => {
    const opArb = fc.oneof(fc.record({ alloc: fc.constant(true as const), order: fc.integer({ min: 0, max: 4 }) }), fc.record({ alloc: fc.constant(false as const), pick: fc.nat() }));
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 80, size: 'max' }), (ops) => {
        const mem = new FillRecorder();
        const a = new PageAllocator(mem);
        const live: Array<{ pfn: number; order: number }> = [];
        for (const op of ops) {
          if (op.alloc) {
            const pfn = a.allocPages(op.order);
            const n = 2 ** op.order;
            expect(pfn).toBeGreaterThanOrEqual(BASE);
            expect(pfn + n).toBeLessThanOrEqual(END);
            expect((pfn - BASE) % n).toBe(0);
            for (const m of live) expect(pfn + n <= m.pfn || m.pfn + 2 ** m.order <= pfn).toBe(true);
            // zeroed: exactly the block, with 0
            expect(mem.fills[mem.fills.length - 1]).toEqual([pfn * 4096, n * 4096, 0]);
            live.push({ pfn, order: op.order });
          } else if (live.length > 0) {
            const m = live.splice(op.pick % live.length, 1)[0]!;
            a.freePages(m.pfn, m.order);
          }
          expect(a.allocatedPages).toBe(live.reduce((s, m) => s + 2 ** m.order, 0));
        }
        for (const m of live.splice(0)) a.freePages(m.pfn, m.order);
        for (let i = 0; i < 64; i++) expect(a.allocPages(10)).toBe(BASE + i * 1024);
        expect(a.allocPages(0)).toBe(-1);
      }),
      { seed: 0xb0dd1, numRuns: 60 },
    );
  });

  it('getOrder(size): the smallest order whose block holds size bytes', () => {
    expect([1, 4096, 4097, 8192, 8193, 20480, 65536, 65537, 4 << 20].map(getOrder)).toEqual([0, 0, 1, 1, 2, 3, 4, 5, 10]);
  });
});

describe('scatterlist', () => {
  it('sgFromBuffers: page, offset, length per entry; the end marker on the last; sgNext stops there', () => {
    const t = sgFromBuffers([
      { phys: 0x3456100, length: 512 },
      { phys: 0x3458300, length: 1024 },
      { phys: 0x345a000, length: 8192 },
    ]);
    expect(t.nents).toBe(3);
    expect(t.origNents).toBe(3);
    expect(t.sgl.map((s) => [s.pagePfn, s.offset, s.length, s.end])).toEqual([
      [0x3456, 0x100, 512, false],
      [0x3458, 0x300, 1024, false],
      [0x345a, 0, 8192, true],
    ]);
    expect(t.sgl.map(sgPhys)).toEqual([0x3456100, 0x3458300, 0x345a000]);
    expect(t.sgl.every((s) => s.dmaAddress === 0n && s.dmaLength === 0)).toBe(true);
    const walk: number[] = [];
    for (let i = 0; i !== -1; i = sgNext(t.sgl, i)) walk.push(i);
    expect(walk).toEqual([0, 1, 2]);
    expect(sgNext(t.sgl, 2)).toBe(-1);
  });

  it('an unused entry is DMA_MAPPING_ERROR with length 0', () => {
    const t = sgFromBuffers([{ phys: 0x1000, length: 4096 }]);
    expect(sgDmaUnused(t.sgl[0]!)).toBe(false);
    t.sgl[0]!.dmaAddress = DMA_MAPPING_ERROR;
    expect(sgDmaUnused(t.sgl[0]!)).toBe(true);
    t.sgl[0]!.dmaLength = 4096;
    expect(sgDmaUnused(t.sgl[0]!)).toBe(false);
  });

  it('sgFromPages merges physically adjacent pages; the last entry gets the remainder of size', () => {
    const t = sgFromPages([0x100, 0x101, 0x103, 0x104, 0x105], 5 * 4096 - 0x100);
    expect(t.sgl.map((s) => [sgPhys(s), s.length, s.end])).toEqual([
      [0x100000, 0x2000, false],
      [0x103000, 0x3000 - 0x100, true],
    ]);
    // descending pfns are not adjacent in list order
    expect(sgFromPages([0x201, 0x200], 8192).sgl.map((s) => [sgPhys(s), s.length])).toEqual([
      [0x201000, 4096],
      [0x200000, 4096],
    ]);
    expect(sgFromPages([0x300], 100).sgl.map((s) => [sgPhys(s), s.length])).toEqual([[0x300000, 100]]);
  });
});

describe('KernelLog', () => {
  it('once(key): the first call prints, later calls with the same key do not', () => {
    const log = new KernelLog(new SimClock());
    log.step = 3;
    log.once('a', 'edu 0000:00:02.0: DMAR: Allocating 1-page iova failed');
    log.once('a', 'edu 0000:00:02.0: DMAR: Allocating 1-page iova failed');
    log.once('b', 'other');
    expect(log.lines).toEqual([
      { step: 3, text: 'edu 0000:00:02.0: DMAR: Allocating 1-page iova failed' },
      { step: 3, text: 'other' },
    ]);
    expect(log.since(1)).toEqual(['other']);
  });

  it('ratelimited: a burst of 10 per 5 s; once more than 5 s have passed, "<name>: N callbacks suppressed" then the message', () => {
    const clock = new SimClock();
    const log = new KernelLog(clock);
    const rs = new RateLimit('dmar_fault');
    for (let i = 0; i < 13; i++) log.ratelimited(rs, `m${i}`);
    expect(log.since(0)).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`));
    // exactly 5 s after the start of the interval: still inside it (time_is_before_jiffies is strict)
    clock.advance(5_000_000_000);
    log.ratelimited(rs, 'late');
    expect(log.lines.length).toBe(10);
    clock.advance(1);
    log.ratelimited(rs, 'next');
    expect(log.since(10)).toEqual(['dmar_fault: 4 callbacks suppressed', 'next']);
    // a new interval began at 'next': 9 more fit, the 10th after it is suppressed
    for (let i = 0; i < 10; i++) log.ratelimited(rs, `n${i}`);
    expect(log.lines.length).toBe(12 + 9);
    // an interval with nothing suppressed ends silently
    clock.advance(6_000_000_000);
    log.ratelimited(rs, 'again');
    expect(log.since(21)).toEqual(['dmar_fault: 1 callbacks suppressed', 'again']);
    clock.advance(6_000_000_000);
    log.ratelimited(rs, 'quiet');
    expect(log.since(23)).toEqual(['quiet']);
  });
});
