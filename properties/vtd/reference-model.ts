/**
 * The reference model the hardware is checked against (reference.property.test.ts): a small IOVA
 * space -- 4 KiB pages at pfns 0..63 and one 2 MiB superpage slot at pfns 512..1023 of one
 * domain -- programmed through TableProgrammer, a Map pfn → {phys, perm} recording what the
 * tables say, and the expected contents of every physical page (the spec pattern until a device
 * write lands on it). The Harness applies operations to both and checks every device access.
 */
import { expect } from 'vitest';
import { PAGE, R, W, hex, iovaOf, patternBytes, rig, type Rig } from './helpers.js';

export type Perm = 1 | 2 | 3;
export type InvKind = 'psi' | 'dsi' | 'global' | 'none';

export type Op =
  | { op: 'map'; pfn: number; count: number; perm: Perm; phys: number; inv: InvKind }
  | { op: 'unmap'; pfn: number; count: number; inv: InvKind }
  | { op: 'map2m'; perm: Perm; phys: number; inv: InvKind }
  | { op: 'unmap2m'; inv: InvKind }
  | { op: 'read'; pfn: number; snap: boolean; off: number; len: number; times: number }
  | { op: 'write'; pfn: number; snap: boolean; off: number; len: number; value: number };

/** 4 KiB region: iova pfns 0..REGION-1, mapped onto phys pfns POOL.. */
export const REGION = 64;
export const POOL = 0x3400;
/** the 2 MiB slot: iova pfns 512..1023 → phys 0x3600000 or 0x3800000 */
export const SP_BASE = 512;
export const SP_SPAN = 512;
export const SP_PHYS: readonly number[] = [0x3600, 0x3800];

export interface Translation {
  phys: number;
  perm: number;
}

/** What the page tables say. */
export class Reference {
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
export class Contents {
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
export function plan(view: (pfn: number) => Translation | undefined, pfn: number, off: number, len: number, isWrite: boolean): Expected {
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

export function describeOutcome(data: Uint8Array, fault: { reason: number; addr: bigint } | undefined): string {
  const f = fault === undefined ? 'ok' : `fault ${fault.reason} at 0x${fault.addr.toString(16)}`;
  return `${f}; ${data.length} bytes: ${hex(data)}`;
}

/** The smallest AM whose naturally aligned block holds first..last. */
function coveringAm(first: number, last: number): number {
  let am = 0;
  while (Math.floor(first / 2 ** am) !== Math.floor(last / 2 ** am)) am++;
  return am;
}

export class Harness {
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
