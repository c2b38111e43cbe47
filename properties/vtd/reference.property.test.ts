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
import { PAGE, R, W, hex, iovaOf, patternBytes, rig, type Rig } from './helpers.js';

type Perm = 1 | 2 | 3;
type InvKind = 'psi' | 'dsi' | 'global' | 'none';

type Op =
  | { op: 'map'; pfn: number; count: number; perm: Perm; phys: number; inv: InvKind }
  | { op: 'unmap'; pfn: number; count: number; inv: InvKind }
  | { op: 'map2m'; perm: Perm; phys: number; inv: InvKind }
  | { op: 'unmap2m'; inv: InvKind }
  | { op: 'read'; pfn: number; snap: boolean; off: number; len: number; times: number }
  | { op: 'write'; pfn: number; snap: boolean; off: number; len: number; value: number };

/** 4 KiB region: iova pfns 0..REGION-1, mapped onto phys pfns POOL.. */
const REGION = 64;
const POOL = 0x3400;
/** the 2 MiB slot: iova pfns 512..1023 → phys 0x3600000 or 0x3800000 */
const SP_BASE = 512;
const SP_SPAN = 512;
const SP_PHYS: readonly number[] = [0x3600, 0x3800];

interface Translation {
  phys: number;
  perm: number;
}

/** What the page tables say. */
class Reference {
  readonly pages = new Map<number, Translation>();
  sp: Translation | undefined;

  lookup(pfn: number): Translation | undefined {
    if (pfn >= SP_BASE && pfn < SP_BASE + SP_SPAN) {
      return this.sp === undefined ? undefined : { phys: this.sp.phys + (pfn - SP_BASE), perm: this.sp.perm };
    }
    return this.pages.get(pfn);
  }
}

/** Expected contents of physical pages: the spec pattern, then whatever devices wrote. */
class Contents {
  readonly pages = new Map<number, Uint8Array>();

  page(pfn: number): Uint8Array {
    let p = this.pages.get(pfn);
    if (p === undefined) {
      p = patternBytes(pfn * PAGE, PAGE);
      this.pages.set(pfn, p);
    }
    return p;
  }
}

interface Segment {
  phys: number;
  off: number;
  n: number;
  at: number;
}

interface Expected {
  segs: Segment[];
  fault?: { reason: number; addr: bigint };
}

/** Where an access of len bytes at (pfn, off) goes under a translation view, page by page. */
function plan(view: (pfn: number) => Translation | undefined, pfn: number, off: number, len: number, isWrite: boolean): Expected {
  const segs: Segment[] = [];
  let p = pfn;
  let o = off;
  let done = 0;
  while (done < len) {
    const t = view(p);
    if (t === undefined || (t.perm & (isWrite ? W : R)) === 0) {
      return { segs, fault: { reason: isWrite ? 5 : 6, addr: BigInt(p) << 12n } };
    }
    const n = Math.min(len - done, PAGE - o);
    segs.push({ phys: t.phys, off: o, n, at: done });
    done += n;
    p++;
    o = 0;
  }
  return { segs };
}

function describeOutcome(data: Uint8Array, fault: { reason: number; addr: bigint } | undefined): string {
  const f = fault === undefined ? 'ok' : `fault ${fault.reason} at 0x${fault.addr.toString(16)}`;
  return `${f}; ${data.length} bytes: ${hex(data)}`;
}

/** The smallest AM whose naturally aligned block holds first..last. */
function coveringAm(first: number, last: number): number {
  let am = 0;
  while (Math.floor(first / 2 ** am) !== Math.floor(last / 2 ** am)) am++;
  return am;
}

class Harness {
  readonly r: Rig;
  readonly ref = new Reference();
  readonly mem = new Contents();
  /** the one page whose unflushed change the device cannot see yet, with its old translation */
  stale: { pfn: number; old: Translation } | undefined;
  step = 0;

  constructor(
    cachingMode: boolean,
    /** caching mode off: a map of absent, uncached pages may skip its invalidation */
    private readonly allowSkip: boolean,
  ) {
    this.r = rig({ cachingMode });
  }

  /** What the device must see: the reference, except the stale page. */
  view = (pfn: number): Translation | undefined => {
    if (this.stale !== undefined && pfn === this.stale.pfn) return this.stale.old;
    return this.ref.lookup(pfn);
  };

  /** Apply a change to the tables and the reference; returns its iova pfn range. */
  private change(op: Op): { first: number; last: number; fresh: boolean } {
    const { prog, dom } = this.r;
    switch (op.op) {
      case 'map': {
        const count = Math.min(op.count, REGION - op.pfn);
        let fresh = true;
        for (let i = 0; i < count; i++) {
          if (this.ref.pages.has(op.pfn + i) || this.stale?.pfn === op.pfn + i) fresh = false;
        }
        prog.map(dom, op.pfn, POOL + op.phys, count, op.perm);
        for (let i = 0; i < count; i++) this.ref.pages.set(op.pfn + i, { phys: POOL + op.phys + i, perm: op.perm });
        return { first: op.pfn, last: op.pfn + count - 1, fresh };
      }
      case 'unmap': {
        const count = Math.min(op.count, REGION - op.pfn);
        prog.unmap(dom, op.pfn, count);
        for (let i = 0; i < count; i++) this.ref.pages.delete(op.pfn + i);
        return { first: op.pfn, last: op.pfn + count - 1, fresh: false };
      }
      case 'map2m': {
        const fresh = this.ref.sp === undefined;
        prog.map(dom, SP_BASE, op.phys, 1, op.perm, 2);
        this.ref.sp = { phys: op.phys, perm: op.perm };
        return { first: SP_BASE, last: SP_BASE + SP_SPAN - 1, fresh };
      }
      case 'unmap2m':
        prog.unmap(dom, SP_BASE, 1, 2);
        this.ref.sp = undefined;
        return { first: SP_BASE, last: SP_BASE + SP_SPAN - 1, fresh: false };
      default:
        throw new Error(`not a change: ${op.op}`);
    }
  }

  /** Invalidate with a PSI of the given AM at first, a DSI or a global flush. */
  invalidate(kind: 'psi' | 'dsi' | 'global', first: number, am: number): void {
    const { prog, did } = this.r;
    if (kind === 'psi') prog.flushIotlbPages(did, first, am);
    else if (kind === 'dsi') prog.flushIotlbDomain(did);
    else prog.flushIotlbGlobal();
    if (this.stale === undefined) return;
    const covered = kind !== 'psi' || Math.floor(this.stale.pfn / 2 ** am) === Math.floor(first / 2 ** am);
    if (covered) this.stale = undefined;
  }

  /** A change followed by its covering invalidation (or none, when allowed for a fresh map). */
  changeAndInvalidate(op: Op & { inv: InvKind }): void {
    const { first, last, fresh } = this.change(op);
    let kind = op.inv;
    if (kind === 'none' && !(this.allowSkip && fresh && op.op !== 'unmap' && op.op !== 'unmap2m')) kind = 'psi';
    if (kind !== 'none') this.invalidate(kind, first, coveringAm(first, last));
  }

  /** A change with no invalidation at all (property B's single unflushed change). */
  changeWithoutInvalidation(op: Op): void {
    this.change(op);
  }

  /** Device read checked against the view; returns the outcome string. */
  read(pfn: number, off: number, len: number): string {
    const { hw, sid } = this.r;
    const res = hw.dmaRead(sid, iovaOf(pfn, off), len);
    const exp = plan(this.view, pfn, off, len, false);
    const data = new Uint8Array(exp.segs.reduce((s, g) => s + g.n, 0));
    for (const g of exp.segs) data.set(this.mem.page(g.phys).subarray(g.off, g.off + g.n), g.at);
    const want = describeOutcome(data, exp.fault);
    const got = describeOutcome(res.data, res.fault);
    expect(got, `step ${this.step}: read pfn 0x${pfn.toString(16)} +0x${off.toString(16)} len ${len}`).toBe(want);
    if (res.fault !== undefined) expect(res.fault.isRead).toBe(true);
    return got;
  }

  /** Device write checked against the view; the expected contents follow it. */
  write(pfn: number, off: number, len: number, value: number): void {
    const { hw, sid } = this.r;
    const data = new Uint8Array(len);
    for (let i = 0; i < len; i++) data[i] = (value + i) & 0xff;
    const res = hw.dmaWrite(sid, iovaOf(pfn, off), data);
    const exp = plan(this.view, pfn, off, len, true);
    const written = exp.segs.reduce((s, g) => s + g.n, 0);
    const label = `step ${this.step}: write pfn 0x${pfn.toString(16)} +0x${off.toString(16)} len ${len}`;
    expect(res.written, label).toBe(written);
    expect(res.fault === undefined ? 'ok' : `fault ${res.fault.reason} at 0x${res.fault.addr.toString(16)}`, label).toBe(
      exp.fault === undefined ? 'ok' : `fault ${exp.fault.reason} at 0x${exp.fault.addr.toString(16)}`,
    );
    if (res.fault !== undefined) expect(res.fault.isRead).toBe(false);
    for (const g of exp.segs) this.mem.page(g.phys).set(data.subarray(g.at, g.at + g.n), g.off);
  }

  /** snap: aim at the n-th currently mapped 4 KiB page instead (so accesses meet mappings) */
  private target(pfn: number, snap: boolean): number {
    if (!snap || this.ref.pages.size === 0) return pfn;
    const mapped = [...this.ref.pages.keys()].sort((a, b) => a - b);
    return mapped[pfn % mapped.length]!;
  }

  run(op: Op): void {
    this.step++;
    switch (op.op) {
      case 'read': {
        const pfn = this.target(op.pfn, op.snap);
        // repeated reads meet their own cached translation
        for (let i = 0; i < op.times; i++) this.read(pfn, op.off, op.len);
        return;
      }
      case 'write':
        this.write(this.target(op.pfn, op.snap), op.off, op.len, op.value);
        return;
      default:
        this.changeAndInvalidate(op);
    }
  }

  /** Every physical page the model knows holds exactly the expected bytes. */
  checkMemory(): void {
    for (const [pfn, bytes] of this.mem.pages) {
      expect(hex(this.r.hw.memory.read(pfn * PAGE, PAGE)), `phys page 0x${pfn.toString(16)}`).toBe(hex(bytes));
    }
  }
}

// ---------------------------------------------------------------- generators

const permArb = fc.oneof(
  { arbitrary: fc.constant<Perm>(3), weight: 3 },
  { arbitrary: fc.constant<Perm>(1), weight: 2 },
  { arbitrary: fc.constant<Perm>(2), weight: 1 },
);
const invArb = fc.oneof(
  { arbitrary: fc.constant<InvKind>('psi'), weight: 6 },
  { arbitrary: fc.constant<InvKind>('dsi'), weight: 1 },
  { arbitrary: fc.constant<InvKind>('global'), weight: 1 },
  { arbitrary: fc.constant<InvKind>('none'), weight: 2 },
);
/** pfns of the 4 KiB region, biased to its first 16 pages so that accesses meet mappings */
const regionPfn = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 15 }), weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: REGION - 1 }), weight: 1 },
);

const mapArb = fc.record({
  op: fc.constant('map' as const),
  pfn: regionPfn,
  count: fc.integer({ min: 1, max: 4 }),
  perm: permArb,
  phys: fc.integer({ min: 0, max: 63 }),
  inv: invArb,
});
const unmapArb = fc.record({
  op: fc.constant('unmap' as const),
  pfn: regionPfn,
  count: fc.integer({ min: 1, max: 4 }),
  inv: invArb,
});
const map2mArb = fc.record({
  op: fc.constant('map2m' as const),
  perm: permArb,
  phys: fc.constantFrom(...SP_PHYS),
  inv: invArb,
});
const unmap2mArb = fc.record({ op: fc.constant('unmap2m' as const), inv: invArb });
/** access targets: the 4 KiB region and one past it, or a page of the superpage slot */
const accessPfn = fc.oneof(
  { arbitrary: regionPfn, weight: 6 },
  { arbitrary: fc.constant(REGION), weight: 1 },
  { arbitrary: fc.integer({ min: 0, max: 3 }).map((k) => SP_BASE + k), weight: 1 },
  { arbitrary: fc.integer({ min: 0, max: SP_SPAN - 1 }).map((k) => SP_BASE + k), weight: 1 },
);
const readArb = fc.record({
  op: fc.constant('read' as const),
  pfn: accessPfn,
  snap: fc.boolean(),
  off: fc.integer({ min: 0, max: PAGE - 1 }),
  len: fc.integer({ min: 1, max: 256 }),
  times: fc.integer({ min: 1, max: 2 }),
});
const writeArb = fc.record({
  op: fc.constant('write' as const),
  pfn: accessPfn,
  snap: fc.boolean(),
  off: fc.integer({ min: 0, max: PAGE - 1 }),
  len: fc.integer({ min: 1, max: 64 }),
  value: fc.integer({ min: 0, max: 255 }),
});

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: mapArb, weight: 4 },
  { arbitrary: unmapArb, weight: 2 },
  { arbitrary: map2mArb, weight: 1 },
  { arbitrary: unmap2mArb, weight: 1 },
  { arbitrary: readArb, weight: 9 },
  { arbitrary: writeArb, weight: 5 },
);

/** a run: a few maps to start from, then any operations */
const runArb: fc.Arbitrary<Op[]> = fc
  .tuple(fc.array(mapArb, { minLength: 2, maxLength: 6, size: 'max' }), fc.array(opArb, { minLength: 1, maxLength: 40, size: 'max' }))
  .map(([warm, ops]) => [...warm, ...ops]);

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

type StaleChange = { kind: 'unmap' } | { kind: 'remap'; perm: Perm; phys: number };

const staleArb = fc.record({
  prefix: runArb,
  p: regionPfn,
  oldPerm: fc.constantFrom<Perm>(1, 3),
  oldPhys: fc.integer({ min: 0, max: 63 }),
  change: fc.oneof(
    fc.constant<StaleChange>({ kind: 'unmap' }),
    fc.record({ kind: fc.constant('remap' as const), perm: permArb, phys: fc.integer({ min: 0, max: 63 }) }),
  ),
  middle: fc.array(opArb, { maxLength: 15, size: 'max' }),
  staleWrite: fc.record({ off: fc.integer({ min: 0, max: PAGE - 64 }), len: fc.integer({ min: 1, max: 64 }), value: fc.integer({ min: 0, max: 255 }) }),
  final: fc.oneof(
    fc.record({ kind: fc.constant('psi' as const), am: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant('dsi' as const), am: fc.constant(0) }),
    fc.record({ kind: fc.constant('global' as const), am: fc.constant(0) }),
  ),
});

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
