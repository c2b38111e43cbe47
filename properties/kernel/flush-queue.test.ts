/**
 * kernel/flush-queue.ts with the simulated clock (kernel-semantics 1.6, 9.2.2; 5.10 iova.c
 * queue_iova / fq_ring_free / fq_flush_timeout, 6.1 dma-iommu.c the same):
 *  - an entry is freed (entry_dtor + free_iova_fast) only after a flush that STARTED after it was
 *    queued has FINISHED: counter (start count at queueing) < finish count;
 *  - each CPU's ring has 256 slots and is full at 255 pending; the 256th queue_iova on that CPU
 *    does a synchronous flush and frees every earlier entry of that ring;
 *  - the timer armed by the first queue_iova fires IOVA_FQ_TIMEOUT = 10 ms later, does exactly one
 *    flush and frees every CPU's ring (on the timer's CPU); only the next queue_iova re-arms it.
 * The owner here frees into a real IovaDomain, so "not freed" also means "IOVA not reusable".
 */
import { describe, expect, it } from 'vitest';
import { SimClock } from '../../kernel/clock.js';
import { FlushQueue, type FqEntry } from '../../kernel/flush-queue.js';
import { IovaDomain } from '../../kernel/iova.js';
import { RELEASES, type Release } from '../../kernel/release.js';

const MS = 1_000_000;

interface Rig {
  clock: SimClock;
  fq: FlushQueue;
  dom: IovaDomain;
  flushes: number[];
  freed: Array<{ cpu: number; pfn: number; freelist: number[] }>;
  /** code run inside the next flush callback (to queue "during" a flush) */
  duringFlush: (() => void) | null;
}

function rig(release: Release, ncpus: number): Rig {
  const clock = new SimClock();
  const dom = new IovaDomain(release, 4096, 1, ncpus);
  const flushes: number[] = [];
  const freed: Rig['freed'] = [];
  const hooks: { duringFlush: (() => void) | null } = { duringFlush: null };
  const fq = new FlushQueue(ncpus, clock, {
    flushAll: () => {
      flushes.push(clock.nowNs);
      const f = hooks.duringFlush;
      hooks.duringFlush = null;
      if (f !== null) f();
    },
    freeEntry: (cpu: number, e: FqEntry) => {
      freed.push({ cpu, pfn: e.pfn, freelist: e.freelist });
      dom.freeIovaFast(cpu, e.pfn, e.pages);
    },
  });
  return {
    clock,
    fq,
    dom,
    flushes,
    freed,
    set duringFlush(f: (() => void) | null) {
      hooks.duringFlush = f;
    },
    get duringFlush() {
      return hooks.duringFlush;
    },
  };
}

/** Allocate n one-page IOVAs (as a lazy unmap would have them) and queue them on cpu. */
function allocAndQueue(r: Rig, cpu: number, n: number): number[] {
  const pfns: number[] = [];
  for (let i = 0; i < n; i++) {
    const pfn = r.dom.allocIovaFast(cpu, 1, 0xfffff, false);
    pfns.push(pfn);
    r.fq.queueIova(cpu, pfn, 1, [0x7f00000 + i]);
  }
  return pfns;
}

describe.each(RELEASES)('flush queue (%s)', (release) => {
  it('queued entries are not freed, and their IOVAs not reusable, before a flush', () => {
    const r = rig(release, 1);
    const pfns = allocAndQueue(r, 0, 3);
    expect(pfns).toEqual([0xfffff, 0xffffe, 0xffffd]);
    r.clock.advance(9 * MS);
    expect(r.freed).toEqual([]);
    expect(r.fq.pending).toBe(3);
    expect([...r.fq.queued()].map((e) => e.pfn)).toEqual(pfns);
    // the next allocation does not get any of them
    expect(r.dom.allocIovaFast(0, 1, 0xfffff, false)).toBe(0xffffc);
  });

  it('the timer armed at the first queue fires 10 ms later: one flush, every CPU freed, LIFO reuse after', () => {
    const r = rig(release, 2);
    expect(r.fq.timerArmed).toBe(false);
    allocAndQueue(r, 1, 2); // arms the timer, on cpu 1
    expect(r.fq.timerArmed).toBe(true);
    expect(r.clock.pendingTimers).toBe(1);
    r.clock.advance(4 * MS);
    const on0 = allocAndQueue(r, 0, 2); // queued at t = 4 ms: does not re-arm or push the timer
    expect(r.clock.pendingTimers).toBe(1);
    r.clock.advance(6 * MS - 1);
    expect(r.flushes).toEqual([]);
    r.clock.advance(1); // t = 10 ms exactly
    expect(r.flushes).toEqual([10 * MS]);
    expect(r.fq.counters.timerFlushes).toBe(1);
    expect(r.fq.counters.fullFlushes).toBe(0);
    expect(r.fq.pending).toBe(0);
    // all four entries, both rings, freed on the CPU that armed the timer, with their page lists
    expect(r.freed.map((f) => f.cpu)).toEqual([1, 1, 1, 1]);
    expect(r.freed.map((f) => f.pfn).sort((a, b) => a - b)).toEqual([0xffffc, 0xffffd, 0xffffe, 0xfffff]);
    expect(r.freed.map((f) => f.freelist.length)).toEqual([1, 1, 1, 1]);
    expect(r.fq.counters.freed).toBe(4);
    expect(r.fq.timerArmed).toBe(false);
    // freed into cpu 1's rcache: cpu 1 reuses them, last freed first
    const last = r.freed[r.freed.length - 1]!.pfn;
    expect(r.dom.allocIovaFast(1, 1, 0xfffff, false)).toBe(last);
    expect(on0.length).toBe(2);
    // no timer left: time passing does nothing more
    r.clock.advance(100 * MS);
    expect(r.flushes.length).toBe(1);
  });

  it('the timer is re-armed only by the next queue_iova', () => {
    const r = rig(release, 1);
    allocAndQueue(r, 0, 1);
    r.clock.advance(10 * MS);
    expect(r.flushes).toEqual([10 * MS]);
    r.clock.advance(50 * MS);
    expect(r.fq.timerArmed).toBe(false);
    expect(r.clock.pendingTimers).toBe(0);
    allocAndQueue(r, 0, 1); // t = 60 ms
    expect(r.fq.timerArmed).toBe(true);
    r.clock.advance(10 * MS - 1);
    expect(r.flushes).toEqual([10 * MS]);
    r.clock.advance(1);
    expect(r.flushes).toEqual([10 * MS, 70 * MS]);
    expect(r.fq.pending).toBe(0);
  });

  it('an entry queued while a flush is running is not freed by that flush', () => {
    const r = rig(release, 2);
    allocAndQueue(r, 0, 1);
    let inFlight = 0;
    // queue on cpu 1 from inside the timer's flush callback: its counter is the already
    // incremented start count, so finish count == counter and fq_ring_free keeps it
    r.duringFlush = () => {
      inFlight = allocAndQueue(r, 1, 1)[0]!;
    };
    r.clock.advance(10 * MS);
    expect(r.flushes.length).toBe(1);
    expect(r.freed.map((f) => f.pfn)).toEqual([0xfffff]);
    expect(inFlight).toBe(0xffffe);
    expect(r.fq.pending).toBe(1);
    // the queue from inside the flush armed the timer again (the timer had cleared its flag)
    expect(r.fq.timerArmed).toBe(true);
    r.clock.advance(10 * MS);
    expect(r.flushes.length).toBe(2);
    expect(r.freed.map((f) => f.pfn)).toEqual([0xfffff, 0xffffe]);
  });

  it('a ring holds 255 pending entries; the 256th queue_iova flushes synchronously and frees all 255', () => {
    const r = rig(release, 2);
    const first = allocAndQueue(r, 0, 255);
    expect(r.fq.pending).toBe(255);
    expect(r.fq.counters.fullFlushes).toBe(0);
    expect(r.flushes).toEqual([]);
    expect(r.freed).toEqual([]);
    // cpu 1's ring is separate: 255 more fit there without a flush
    allocAndQueue(r, 1, 255);
    expect(r.fq.pending).toBe(510);
    expect(r.flushes).toEqual([]);
    // the 256th on cpu 0
    const extra = allocAndQueue(r, 0, 1)[0]!;
    expect(r.fq.counters.fullFlushes).toBe(1);
    expect(r.flushes).toEqual([0]);
    // every earlier cpu-0 entry, in queue order, on cpu 0; the new one is pending
    expect(r.freed.map((f) => f.pfn)).toEqual(first);
    expect(r.freed.every((f) => f.cpu === 0)).toBe(true);
    expect([...r.fq.queued()].filter((e) => e.pfn === extra).length).toBe(1);
    // cpu 1's entries are covered by that flush but are freed only by cpu 1's next queue_iova
    expect(r.fq.pending).toBe(1 + 255);
    allocAndQueue(r, 1, 1);
    expect(r.flushes.length).toBe(1);
    expect(r.freed.length).toBe(255 + 255);
    expect(r.freed.slice(255).every((f) => f.cpu === 1)).toBe(true);
    expect(r.fq.pending).toBe(2);
    expect(r.fq.counters.queued).toBe(512);
    expect(r.fq.counters.freed).toBe(510);
  });

  it('freed IOVAs become reusable only after the flush', () => {
    const r = rig(release, 1);
    const queued = allocAndQueue(r, 0, 255);
    // before: a fresh allocation is below all of them
    expect(r.dom.allocIovaFast(0, 1, 0xfffff, false)).toBe(0xfffff - 255);
    allocAndQueue(r, 0, 1); // full -> flush -> the 255 go to cpu 0's rcache
    // rcache LIFO: the last one freed (queued[254]) comes back first
    expect(r.dom.allocIovaFast(0, 1, 0xfffff, false)).toBe(queued[254]);
  });
});
