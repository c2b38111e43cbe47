/**
 * One device's share of the reach tracker (reach-tracker.ts): its probe results and the grants
 * they make.
 * - probes: every IOVA page the reference probes (observe.ts computeReachable: the pages of
 *   present leaves and of the device domain's cached IOTLB entries, a 1 GiB one every 512 pages)
 *   that reaches a physical page, with its permission; re-probed (hw.peekPermIn) over a range the
 *   tracker says may have moved.
 * - grants: each physical page's permission (how many IOVA pages grant read, write); a change of
 *   one is told to the tracker's listeners (the checker keeps the running difference of the paths).
 */
import type { Device } from '../../kernel/device.js';
import type { Machine } from '../../platform/machine.js';
import type { CachedContext } from '../../vtd/context-cache.js';
import { levelBase, lvlToNrPages, modPow2 } from '../../vtd/regs.js';
import { DENSE_PROBE_LIMIT } from './observe.js';
import { PageMap, PfnList } from './page-map.js';
import { coveringLeafBase, leafLevel } from './reach-leaves.js';

/** A reach as hw.peekPerm gives it and the probes keep it: target pfn * 4 + the R/W bits. */
export const reachOf = (target: number, perm: number): number => target * 4 + perm;
export const reachTarget = (v: number): number => Math.floor(v / 4);
export const reachPerm = (v: number): number => modPow2(v, 4);

/** Which pages a candidate of `pages` pages starting at `base` gets probed at (the reference's rule). */
function probeStep(pages: number): number {
  return pages > DENSE_PROBE_LIMIT ? 512 : 1;
}

/** ranges of at most this many pages are re-probed page by page (reprobeOne) */
const SMALL_RANGE = 64;

/**
 * Told of each change of one physical page's permission for one device: old and new R/W bits.
 * An object with a method rather than a closure (see TraceObserver in kernel/trace.ts).
 */
export interface PermListener {
  permChanged(dev: number, phys: number, oldPerm: number, newPerm: number): void;
}

/** the unit of write grants in DeviceReach.grants (read grants count below it) */
const WRITERS = 2 ** 26;

/** the R/W bits a grants count gives: some IOVA page grants read, some grants write */
function grantPerm(g: number): number {
  return (modPow2(g, WRITERS) > 0 ? 1 : 0) | (g >= WRITERS ? 2 : 0);
}

export class DeviceReach {
  /** probed IOVA pfn -> what it reaches (reachOf) */
  readonly probes = new PageMap();
  /** per physical page: IOVA pages granting read + WRITERS * IOVA pages granting write (one map, not two: a million entries) */
  readonly grants = new PageMap();
  root = -1;
  levels = 0;
  /** the present leaves of its domain (the leaf shadow's map for `root`; undefined while it has none) */
  leaves: PageMap | undefined;
  /** IOVA pfns whose leaf changed since the trace accountant last looked */
  readonly leafChanges = new PfnList();
  /** pages to re-probe once the whole journal is applied (a page an unmap clears and drops from the IOTLB is looked at once) */
  readonly pending = new PfnList();
  /** the context as the hardware resolves it (its did), and whether the context cache holds one */
  ctxKey = '';
  /** the did of the context the hardware resolves (what its IOTLB lookups use), and of a cached one */
  ctxDid: number | undefined;
  cachedDid: number | undefined;
  /** what hw.peekContext answers for the device: its probes look with it (hw.peekPermIn) */
  ctx: CachedContext | number = -1;

  /** `listeners` is the tracker's list (shared, not copied: a listener added later is told too). */
  constructor(
    readonly index: number,
    readonly dev: Device,
    private readonly hw: Machine['hw'],
    private readonly listeners: readonly PermListener[],
  ) {}

  perm(phys: number): number {
    return grantPerm(this.grants.get(phys) ?? 0);
  }

  /** Drop every probe and probe the whole domain again. */
  reprobeAll(): void {
    const all = this.probes.entries();
    for (let x = 1; x < all.length; x += 2) this.setProbe(all[x]!, undefined);
    this.probes.clear();
    if (this.root < 0) return;
    this.reprobe(0, lvlToNrPages(this.levels + 1));
  }

  /**
   * Re-probe over [first, first + pages): the pages the reference would probe there (of present
   * leaves, and of cached IOTLB entries of the device's domain), each with hw.peek.
   */
  reprobe(first: number, pages: number): void {
    if (pages <= SMALL_RANGE) {
      // page by page (the same rule as the range walk below, without its sets and closures),
      // once the whole journal is applied: a page written and invalidated in one step is looked
      // at once
      for (let p = first; p < first + pages; p++) this.pending.add(p);
      return;
    }
    const m = this.leaves;
    const hw = this.hw;
    // nothing probed, no leaf, no cached entry: nothing to look at (a device's first look at an
    // empty domain)
    if (this.probes.size === 0 && (m === undefined || m.size === 0) && (this.cachedDid === undefined || !hw.iotlb.holdsDomain(this.cachedDid))) return;
    const last = first + pages - 1;
    const probe = new Set<number>();
    // superpage leaves met here: each page of one reaches the next physical page with the same
    // permission, so outside caching mode and with no IOTLB entry over it (what a walk of its
    // pages cannot differ by) one look at it answers for all its pages
    const superLeaves: Array<{ base: number; n: number; first?: number; v?: number }> = [];
    const addCandidate = (base: number, n: number, leaf = false): void => {
      const stepBy = probeStep(n);
      const lo = Math.max(first, base);
      const hi = Math.min(last, base + n - 1);
      if (leaf && n > 1) superLeaves.push({ base, n });
      // the candidate's probe points within the range
      let p = stepBy === 1 ? lo : base + Math.ceil((lo - base) / stepBy) * stepBy;
      for (; p <= hi; p += stepBy) probe.add(p);
    };
    if (m !== undefined) {
      // a superpage leaf that starts before the range and reaches into it
      const before = coveringLeafBase(m, first);
      if (before >= 0 && before < first) addCandidate(before, lvlToNrPages(leafLevel(m.get(before)!)), true);
      const inside = m.inRange(first, pages);
      for (let x = 0; x < inside.length; x += 2) addCandidate(inside[x]!, lvlToNrPages(leafLevel(inside[x + 1]!)), true);
    }
    if (this.cachedDid !== undefined) {
      for (const e of hw.iotlb.entriesOf(this.cachedDid)) {
        const n = lvlToNrPages(e.level);
        if (e.basePfn <= last && e.basePfn + n - 1 >= first) addCandidate(e.basePfn, n);
      }
    }
    let uniform: typeof superLeaves = [];
    const ctx = superLeaves.length > 0 && !hw.cachingMode ? this.ctx : -1;
    // (the hardware must walk the very tables the leaves were read from)
    if (typeof ctx !== 'number' && ctx.slptPfn === this.root) {
      const entries = [...hw.iotlb.entriesOf(ctx.did)];
      uniform = superLeaves.filter((l) => !entries.some((e) => e.basePfn <= l.base + l.n - 1 && e.basePfn + lvlToNrPages(e.level) - 1 >= l.base));
    }
    const look = (p: number): number => {
      for (const l of uniform) {
        if (p < l.base || p >= l.base + l.n) continue;
        if (l.v === undefined) {
          l.first = p;
          l.v = hw.peekPermIn(this.ctx, p);
        }
        return l.v < 0 ? -1 : l.v + (p - l.first!) * 4;
      }
      return hw.peekPermIn(this.ctx, p);
    };
    // drop what was probed here before, then probe again
    const had = this.probes.inRange(first, pages);
    for (let x = 0; x < had.length; x += 2) {
      const pfn = had[x]!;
      const v = had[x + 1]!;
      if (!probe.has(pfn)) {
        this.probes.delete(pfn);
        this.setProbe(v, undefined);
      }
    }
    for (const p of probe) {
      const v = look(p);
      const old = this.probes.get(p);
      const now = v < 0 ? undefined : v;
      if (old === now) continue;
      if (now === undefined) this.probes.delete(p);
      else this.probes.set(p, now);
      this.setProbe(old, now);
    }
  }

  /** reprobe() of a single page: whether the reference probes it, and what it reaches. */
  reprobeOne(p: number): void {
    const hw = this.hw;
    // a 4 KiB IOTLB entry of the domain the device resolves to (and caches) answers its probe
    // before any walk: when it says what the page was last seen reaching, nothing moved (the
    // usual device access, whose fill repeats the walk it cached); context changes were applied
    // before this
    if (this.ctxDid !== undefined && this.ctxDid === this.cachedDid) {
      const e = hw.iotlb.at(this.ctxDid, p, 1);
      if (e !== undefined && e.perm !== 0 && this.probes.get(p) === reachOf(e.physBasePfn, e.perm)) return;
    }
    let probed = false;
    const m = this.leaves;
    const base = m === undefined ? -1 : coveringLeafBase(m, p);
    if (base >= 0) probed = modPow2(p - base, probeStep(lvlToNrPages(leafLevel(m!.get(base)!)))) === 0;
    for (let level = 1; !probed && this.cachedDid !== undefined && level <= 3; level++) {
      const n = lvlToNrPages(level);
      const base = levelBase(p, level);
      probed = hw.iotlb.at(this.cachedDid, base, level) !== undefined && modPow2(p - base, probeStep(n)) === 0;
    }
    const old = this.probes.get(p);
    let now: number | undefined;
    if (probed) {
      const v = hw.peekPermIn(this.ctx, p);
      now = v < 0 ? undefined : v;
    }
    if (old === now) return;
    if (now === undefined) this.probes.delete(p);
    else this.probes.set(p, now);
    this.setProbe(old, now);
  }

  /** One probe's result moved from `old` to `now` (target * 4 + perm, or none): update the counts. */
  private setProbe(old: number | undefined, now: number | undefined): void {
    if (old !== undefined) this.grant(old, -1);
    if (now !== undefined) this.grant(now, 1);
  }

  private grant(v: number, by: number): void {
    const phys = reachTarget(v);
    const perm = reachPerm(v);
    const g = this.grants.get(phys) ?? 0;
    const n = g + by * ((perm & 1) + ((perm & 2) !== 0 ? WRITERS : 0));
    if (n === 0) this.grants.delete(phys);
    else this.grants.set(phys, n);
    const before = grantPerm(g);
    const after = grantPerm(n);
    if (after !== before) for (const l of this.listeners) l.permChanged(this.index, phys, before, after);
  }
}
