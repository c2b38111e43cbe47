/**
 * The hardware against a plain reference model of the page tables.
 *
 * Operations over a small IOVA space -- 4 KiB pages at pfns 0..63 and one 2 MiB superpage slot at
 * pfns 512..1023 of one domain -- are programmed through TableProgrammer; a Map pfn → {phys, perm}
 * records what the tables say. A second model records the expected contents of every physical
 * page (the spec pattern until a device write lands on it).
 *
 * Property A: when every map/unmap is followed by an invalidation covering the changed range
 * (PSI whose aligned block covers it, DSI or global), every device access equals the reference:
 * the bytes of the reference physical page, or fault 6 (read) / 5 (write) where it is absent or
 * lacks the permission. With caching mode off, a map of pages that are absent (and so cannot be
 * cached) may skip the invalidation.
 *
 * Property B: exactly one unmap or remap of a page the device has just accessed is not followed
 * by an invalidation. The device then sees the old translation -- unlike the reference -- until an
 * invalidation covers the page; other pages keep agreeing with the reference throughout.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PAGE } from './helpers.js';
import { runArb, staleArb } from './reference-arbitraries.js';
import { Harness, POOL, describeOutcome, plan, type Translation } from './reference-model.js';

// ---------------------------------------------------------------- property A

describe('property A: invalidated changes keep the device equal to the reference', () => {
  it('caching mode off, every change followed by a covering invalidation', () => {
    fc.assert(
      fc.property(runArb, (ops) => {
        const h = new Harness(false, false);
        for (const op of ops) h.run(op);
        h.checkMemory();
      }),
      { seed: 42, numRuns: 150 },
    );
  });

  it('caching mode off, maps of absent pages without invalidation', () => {
    fc.assert(
      fc.property(runArb, (ops) => {
        const h = new Harness(false, true);
        for (const op of ops) h.run(op);
        h.checkMemory();
      }),
      { seed: 42, numRuns: 100 },
    );
  });

  it('caching mode on, every change followed by a covering invalidation', () => {
    fc.assert(
      fc.property(runArb, (ops) => {
        const h = new Harness(true, false);
        for (const op of ops) h.run(op);
        h.checkMemory();
      }),
      { seed: 42, numRuns: 100 },
    );
  });

  it('the generated runs exercise hits, walks, faults and every invalidation kind', () => {
    const totals = { hits: 0, walks: 0, faults: 0, psi: 0, dsi: 0, global: 0 };
    fc.assert(
      fc.property(runArb, (ops) => {
        const h = new Harness(false, false);
        for (const op of ops) h.run(op);
        const c = h.r.hw.counters;
        totals.hits += c.iotlbHits;
        totals.walks += c.pageWalks;
        totals.faults += c.faultsRecorded + c.faultsDropped;
        totals.psi += c.iotlbPage;
        totals.dsi += c.iotlbDomain;
        totals.global += c.iotlbGlobal;
      }),
      { seed: 42, numRuns: 50 },
    );
    expect(totals.hits).toBeGreaterThan(100);
    expect(totals.walks).toBeGreaterThan(300);
    expect(totals.faults).toBeGreaterThan(150);
    expect(totals.psi).toBeGreaterThan(200);
    expect(totals.dsi).toBeGreaterThan(50);
    expect(totals.global).toBeGreaterThan(20);
  });
});

// ---------------------------------------------------------------- property B

describe('property B: one missing invalidation shows the old translation until one covers it', () => {
  it('stale unmap/remap of a cached page', () => {
    let staleRuns = 0;
    let staleThroughMiddle = 0;
    fc.assert(
      fc.property(fc.boolean(), staleArb, (allowSkip, s) => {
        const h = new Harness(false, allowSkip);
        for (const op of s.prefix) h.run(op);

        // map p (invalidated) and let the device read it: the translation is now cached
        h.step++;
        h.changeAndInvalidate({ op: 'map', pfn: s.p, count: 1, perm: s.oldPerm, phys: s.oldPhys, inv: 'psi' });
        const old: Translation = { phys: POOL + s.oldPhys, perm: s.oldPerm };
        h.read(s.p, 0, PAGE);

        // the one change without invalidation
        h.step++;
        if (s.change.kind === 'unmap') {
          h.changeWithoutInvalidation({ op: 'unmap', pfn: s.p, count: 1, inv: 'none' });
        } else {
          const phys = s.change.phys === s.oldPhys ? (s.oldPhys + 1) % 64 : s.change.phys;
          h.changeWithoutInvalidation({ op: 'map', pfn: s.p, count: 1, perm: s.change.perm, phys, inv: 'none' });
        }
        h.stale = { pfn: s.p, old };
        staleRuns++;

        // the device still sees the old page, and that differs from what the tables say now
        const seen = h.read(s.p, 0, PAGE);
        const refPlan = plan((pfn) => h.ref.lookup(pfn), s.p, 0, PAGE, false);
        const refData = new Uint8Array(refPlan.segs.reduce((n, g) => n + g.n, 0));
        for (const g of refPlan.segs) refData.set(h.mem.page(g.phys).subarray(g.off, g.off + g.n), g.at);
        expect(seen).not.toBe(describeOutcome(refData, refPlan.fault));
        expect(seen.startsWith('ok;')).toBe(true);

        // other traffic, with every other change invalidated; p stays stale unless covered
        for (const op of s.middle) h.run(op);

        // a write through the (possibly still) stale translation lands where the view says
        if (h.stale !== undefined) staleThroughMiddle++;
        h.step++;
        h.write(s.p, s.staleWrite.off, s.staleWrite.len, s.staleWrite.value);

        // a covering invalidation: afterwards the device agrees with the reference again
        h.step++;
        h.invalidate(s.final.kind, s.p, s.final.am);
        expect(h.stale).toBeUndefined();
        h.read(s.p, 0, PAGE);
        h.write(s.p, s.staleWrite.off, s.staleWrite.len, s.staleWrite.value ^ 0xff);
        h.checkMemory();
      }),
      { seed: 42, numRuns: 200 },
    );
    expect(staleRuns).toBeGreaterThanOrEqual(200);
    // many runs keep the page stale through the unrelated traffic (the rest meet a DSI, a
    // global flush or a PSI whose block covers it)
    expect(staleThroughMiddle).toBeGreaterThan(60);
  });

  it('a stale page cached before an unflushed unmap is still readable after unrelated invalidations', () => {
    // a deterministic instance of property B, written out: p = 5 cached from phys 0x3405
    const h = new Harness(false, false);
    h.changeAndInvalidate({ op: 'map', pfn: 5, count: 1, perm: 3, phys: 5, inv: 'psi' });
    expect(h.read(5, 0, 8)).toBe('ok; 8 bytes: 00 50 40 03 00 00 00 a5');
    h.changeWithoutInvalidation({ op: 'unmap', pfn: 5, count: 1, inv: 'none' });
    h.stale = { pfn: 5, old: { phys: 0x3405, perm: 3 } };
    expect(h.read(5, 0, 8)).toBe('ok; 8 bytes: 00 50 40 03 00 00 00 a5');
    // a PSI of page 4 (AM 0) and of pages 6..7 (AM 1) do not cover 5
    h.invalidate('psi', 4, 0);
    h.invalidate('psi', 6, 1);
    expect(h.stale).toBeDefined();
    expect(h.read(5, 0, 8)).toBe('ok; 8 bytes: 00 50 40 03 00 00 00 a5');
    // AM 2 at 6 covers 4..7
    h.invalidate('psi', 6, 2);
    expect(h.stale).toBeUndefined();
    expect(h.read(5, 0, 8)).toBe('fault 6 at 0x5000; 0 bytes: ');
  });
});
