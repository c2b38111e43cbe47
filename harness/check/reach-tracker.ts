/**
 * The reachable set of every device of one path, kept current from what the hardware reports
 * changed (vtd/journal.ts) instead of re-probed after every step: a step costs what it changed.
 *
 * What is kept, per path:
 * - the present leaves of each domain page table (base pfn -> phys, level, R/W), re-read only
 *   over the span of a page-table entry that was written (the table page written tells which
 *   domain, level and IOVA range it maps; tables are learnt as walks pass through them);
 * - per device, the probe results: every IOVA page the reference probes (observe.ts
 *   computeReachable: the pages of present leaves and of the device domain's cached IOTLB
 *   entries, a 1 GiB one every 512 pages) that reaches a physical page, with its permission --
 *   re-probed (hw.peek) over the range of each written entry, filled or dropped IOTLB entry and,
 *   in caching mode, each invalidation (it can make written entries visible);
 * - per device, each physical page's permission (how many IOVA pages grant read, write), whose
 *   changes a listener receives: the checker keeps the running difference of the two paths.
 * A context change (context cache, context invalidation, root table, translation enable)
 * re-probes the devices whose context moved. computeReachable stays the reference: tests and
 * --paranoid compare the two after every step.
 */
import type { Device } from '../../kernel/device.js';
import type { DmaPath } from '../../kernel/dma-api.js';
import type { CachedContext } from '../../vtd/context-cache.js';
import { TranslationJournal } from '../../vtd/journal.js';
import { VTD_PAGE_SIZE, DMA_PTE_LARGE_PAGE, DMA_PTE_READ, agawToLevel, levelBase, lvlToNrPages, modPow2, pfnLevelOffset } from '../../vtd/regs.js';
import { entryPfn } from '../../vtd/entries.js';
import { DENSE_PROBE_LIMIT, poolKey, regionOf, type Reachable } from './observe.js';
import { PageMap, PfnList } from './page-map.js';

/** A leaf as kept: phys pfn * 16 + level * 4 + R/W bits. */
const enc = (phys: number, level: number, perm: number): number => phys * 16 + level * 4 + perm;
const leafPhys = (v: number): number => Math.floor(v / 16);
const leafLevel = (v: number): number => modPow2(Math.floor(v / 4), 4);
const leafPerm = (v: number): number => modPow2(v, 4);

/** A reach as hw.peekPerm gives it and the probes keep it: target pfn * 4 + the R/W bits. */
const reachOf = (target: number, perm: number): number => target * 4 + perm;
export const reachTarget = (v: number): number => Math.floor(v / 4);
const reachPerm = (v: number): number => modPow2(v, 4);

/**
 * The base pfn of the leaf of `m` that covers pfn (a 4 KiB, 2 MiB or 1 GiB one), or -1; its kept
 * value is m.get(base).
 */
function coveringLeafBase(m: PageMap, pfn: number): number {
  for (let level = 1; level <= 3; level++) {
    const base = levelBase(pfn, level);
    const v = m.get(base);
    if (v !== undefined && leafLevel(v) === level) return base;
  }
  return -1;
}

/** Where a page-table page sits: the domain (by its root page), its level, the first IOVA pfn it maps. */
interface TableInfo {
  root: number;
  level: number;
  base: number;
}

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

class DeviceReach {
  /** probed IOVA pfn -> what it reaches (reachOf) */
  readonly probes = new PageMap();
  /** per physical page: IOVA pages granting read + WRITERS * IOVA pages granting write (one map, not two: a million entries) */
  readonly grants = new PageMap();
  root = -1;
  levels = 0;
  /** the present leaves of its domain (the tracker's map for `root`; undefined while it has none) */
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

  constructor(
    readonly index: number,
    readonly dev: Device,
  ) {}

  perm(phys: number): number {
    return grantPerm(this.grants.get(phys) ?? 0);
  }
}

export class ReachTracker {
  private readonly journal = new TranslationJournal();
  private readonly devs: DeviceReach[];
  private readonly byDev = new Map<Device, DeviceReach>();
  /** domain root page -> its present leaves (base pfn -> enc) */
  private readonly leaves = new Map<number, PageMap>();
  private readonly tables = new Map<number, TableInfo>();
  /** root and context table pages of the tracked devices: a write there moves contexts */
  private contextPages = new Set<number>();
  /** the last written page found to be neither a tracked table nor a context page (until one of those changes) */
  private quietPage = -1;
  private readonly listeners: PermListener[] = [];
  /** per domain root: the bases of leaves that map pool pages (swiotlb slots, coherent buffers) */
  private readonly pooledLeaves = new Map<number, Set<number>>();

  /**
   * `bug` is a seeded bug of the tracker itself, for the test that proves --paranoid's
   * comparison can fail: 'ignoreIotlbEvents' never re-probes for a filled or dropped IOTLB entry.
   */
  constructor(
    readonly model: DmaPath,
    private readonly bug?: 'ignoreIotlbEvents',
  ) {
    this.devs = model.devices.map((d, i) => new DeviceReach(i, d));
    for (const d of this.devs) this.byDev.set(d.dev, d);
    model.machine.hw.journal = this.journal;
    this.resyncAll();
  }

  /** Be told of every change of a device's permission on a physical page. */
  onPermChange(l: PermListener): void {
    this.listeners.push(l);
  }

  // ---------------------------------------------------------------- what the checker reads

  /** The reachable set of device k, as the reference computes it (for --paranoid and tests). */
  reachable(k: number): Reachable {
    const d = this.devs[k]!;
    const out: Reachable = { pages: new Map(), pooled: new Map() };
    const all = d.grants.entries();
    const phys: number[] = [];
    for (let x = 0; x < all.length; x += 2) phys.push(all[x]!);
    for (const p of phys.sort((a, b) => a - b)) {
      const perm = d.perm(p);
      if (perm === 0) continue;
      const region = regionOf(p);
      if (region === null) out.pages.set(p, perm);
      else out.pooled.set(poolKey(region, perm), (out.pooled.get(poolKey(region, perm)) ?? 0) + 1);
    }
    return out;
  }

  /** Device k's current permission on a physical page. */
  perm(k: number, phys: number): number {
    return this.devs[k]!.perm(phys);
  }

  /**
   * What a device read of IOVA page pfn reaches now: the target pfn, or a fault reason negated
   * (hw.peek(sid, pfn, false)), answered from the probes where one holds a readable target
   * (peekPerm's R bit is exactly a read peek's success). Current after update().
   */
  readTarget(dev: Device, pfn: number): number {
    const d = this.of(dev);
    const v = d.probes.get(pfn);
    if (v !== undefined && (reachPerm(v) & DMA_PTE_READ) !== 0) return reachTarget(v);
    return this.model.machine.hw.peek(dev.sid, pfn, false);
  }

  /**
   * What the present leaf covering an IOVA pfn in a device's domain maps that page to (reachOf:
   * the physical pfn and its R/W bits), or -1 when no present leaf covers it.
   */
  leafTarget(dev: Device, pfn: number): number {
    const m = this.of(dev).leaves;
    const base = m === undefined ? -1 : coveringLeafBase(m, pfn);
    if (base < 0) return -1;
    const v = m!.get(base)!;
    return reachOf(leafPhys(v) + (pfn - base), leafPerm(v));
  }

  /**
   * The IOVA pfns of a device's domain whose leaf changed since the reader last cleared the set
   * (the trace accountant reads and clears it after each step).
   */
  leafChanges(dev: Device): PfnList {
    return this.of(dev).leafChanges;
  }

  /**
   * Add each IOVA pfn of a device's domain whose leaf maps a pool page (what they name can change
   * without a PTE write) to `into`.
   */
  addPooledLeafPages(dev: Device, into: PfnList): void {
    const root = this.of(dev).root;
    const bases = this.pooledLeaves.get(root);
    if (bases === undefined) return;
    const m = this.leaves.get(root);
    for (const base of bases) {
      const v = m?.get(base);
      if (v !== undefined) for (let i = 0; i < lvlToNrPages(leafLevel(v)); i++) into.add(base + i);
    }
  }

  private of(dev: Device): DeviceReach {
    return this.byDev.get(dev)!;
  }

  // ---------------------------------------------------------------- keeping current

  /** Apply everything the hardware reported since the last call. */
  update(): void {
    const j = this.journal;
    if (j.empty) return;
    const hw = this.model.machine.hw;
    if (j.contextChanged) {
      this.resyncContexts();
    }
    // page-table writes: the span of each written entry, in its domain
    const dirty: Array<[number, number, number]> = [];
    const w = j.writes;
    let contextMoved = false;
    for (let k = 0; k < j.nWrites; k += 2) {
      const addr = w[k]!;
      const n = w[k + 1]!;
      const page = Math.floor(addr / VTD_PAGE_SIZE);
      // a whole page written is a table page being (re)initialised by its allocator: the kernel
      // never rewrites a linked table whole, so it is no longer where it was (its linking, if it
      // comes, is a write we see)
      if (n >= VTD_PAGE_SIZE) {
        this.tables.delete(page);
        if (this.contextPages.has(page)) contextMoved = true;
        continue;
      }
      // most writes are the invalidation queue's descriptors and status, one page over and over
      if (page === this.quietPage) continue;
      const info = this.tables.get(page);
      if (info === undefined) {
        if (this.contextPages.has(page)) contextMoved = true;
        else this.quietPage = page;
        continue; // a table not linked into any tracked domain (yet): its linking is a write we see
      }
      const span = lvlToNrPages(info.level);
      const off = addr - page * VTD_PAGE_SIZE;
      const i0 = Math.floor(off / 8);
      const i1 = Math.floor((off + n - 1) / 8);
      if (info.level === 1 && i0 === i1) this.leafWritten(info.root, info.base + i0, addr);
      else dirty.push([info.root, info.base + i0 * span, (i1 - i0 + 1) * span]);
    }
    if (contextMoved) this.resyncContexts();
    for (const [root, first, pages] of dirty) this.rereadLeaves(root, first, pages);
    for (const [root, first, pages] of dirty) for (const d of this.devs) if (d.root === root) this.reprobe(d, first, pages);
    // IOTLB entries filled or dropped: in the domain a device's cached context names (they are
    // candidates) or the one its walk resolves to (they answer its probes)
    const t = j.iotlb;
    const nt = this.bug === 'ignoreIotlbEvents' ? 0 : j.nIotlb;
    for (let k = 0; k < nt; k += 3) {
      for (const d of this.devs) {
        if (d.cachedDid !== t[k] && d.ctxDid !== t[k]) continue;
        if (t[k + 2] === 1) this.later(d, t[k + 1]!);
        else this.reprobe(d, t[k + 1]!, t[k + 2]!);
      }
    }
    // caching mode: an invalidation can make written entries visible
    if (hw.cachingMode) {
      const c = j.coverage;
      for (let k = 0; k < j.nCoverage; k += 3) {
        const did = c[k]!;
        for (const d of this.devs) {
          if (did !== -1 && d.ctxDid !== did) continue;
          if (c[k + 2]! < 0) this.reprobeAll(d);
          else this.reprobe(d, c[k + 1]!, c[k + 2]!);
        }
      }
    }
    for (const d of this.devs) {
      const n = d.pending.settle();
      for (let x = 0; x < n; x++) this.reprobeOne(d, d.pending.at(x));
      d.pending.clear();
    }
    j.clear();
  }

  /**
   * One last-level entry written (the common step): read it where it was written, instead of
   * walking down to it, and re-probe its one page.
   */
  private leafWritten(root: number, pfn: number, addr: number): void {
    const m = this.leaves.get(root);
    if (m === undefined) return;
    const s = this.scratch;
    this.model.machine.memory.readQword(addr, s);
    const before = m.get(pfn);
    const now = (s[0]! & 3) === 0 ? undefined : enc(entryPfn(s[0]!, s[1]!), 1, s[0]! & 3);
    if (before === now) return;
    if (now === undefined) m.delete(pfn);
    else m.set(pfn, now);
    const pooled = this.pooledLeaves.get(root);
    pooled?.delete(pfn);
    if (now !== undefined && regionOf(leafPhys(now)) !== null) {
      if (pooled === undefined) this.pooledLeaves.set(root, new Set([pfn]));
      else pooled.add(pfn);
    }
    for (const d of this.devs) {
      if (d.root !== root) continue;
      d.leafChanges.add(pfn);
      this.later(d, pfn);
    }
  }

  private later(d: DeviceReach, pfn: number): void {
    d.pending.add(pfn);
  }

  private readonly scratch = new Uint32Array(2);

  /** Contexts may have moved: re-probe every device whose resolved or cached context changed. */
  private resyncContexts(): void {
    this.learnContextPages();
    const hw = this.model.machine.hw;
    for (const d of this.devs) {
      const before = d.ctxKey;
      const cachedBefore = d.cachedDid;
      this.readContext(d);
      if (d.ctxKey !== before) this.reprobeAll(d);
      else if (d.cachedDid !== cachedBefore) {
        // only which IOTLB entries count as candidates moved: re-probe where those entries are
        for (const did of [cachedBefore, d.cachedDid]) {
          if (did === undefined) continue;
          for (const e of [...hw.iotlb.entriesOf(did)]) this.reprobe(d, e.basePfn, lvlToNrPages(e.level));
        }
      }
    }
  }

  private readContext(d: DeviceReach): void {
    const hw = this.model.machine.hw;
    const ctx: CachedContext | number = hw.peekContext(d.dev.sid);
    d.ctx = ctx;
    const cached = hw.contextCache.lookup(d.dev.sid);
    d.cachedDid = cached?.did;
    d.ctxDid = typeof ctx === 'number' ? undefined : ctx.did;
    const pt = this.model.domainPgtable(d.dev);
    if (pt.pgdPfn !== d.root) {
      d.root = pt.pgdPfn;
      d.levels = agawToLevel(pt.agaw);
      if (d.root >= 0 && !this.leaves.has(d.root)) {
        this.leaves.set(d.root, new PageMap());
        this.rereadLeaves(d.root, 0, lvlToNrPages(d.levels + 1));
      }
      d.leaves = d.root >= 0 ? this.leaves.get(d.root) : undefined;
    }
    // everything a probe's answer depends on besides tables and the IOTLB
    // the context the walk uses (the cached one when cached, else memory's); whether one is
    // cached at all only decides which IOTLB entries are candidates (cachedDid)
    d.ctxKey = typeof ctx === 'number' ? `f${ctx}:${hw.rootTableAddress}` : `${ctx.did}:${ctx.tt}:${ctx.slptPfn}:${ctx.levels}:${ctx.widthPfnLimit}:${hw.translationOn ? 1 : 0}`;
  }

  /** The root and context table pages the tracked devices resolve through. */
  private learnContextPages(): void {
    const hw = this.model.machine.hw;
    const mem = this.model.machine.memory;
    const pages = new Set<number>();
    const root = Math.floor(hw.rootTableAddress / VTD_PAGE_SIZE);
    pages.add(root);
    const s = new Uint32Array(2);
    for (const d of this.devs) {
      mem.readQword(root * VTD_PAGE_SIZE + (d.dev.sid >>> 8) * 16, s);
      if ((s[0]! & 1) !== 0) pages.add(entryPfn(s[0]!, s[1]!));
    }
    this.contextPages = pages;
    this.quietPage = -1;
  }

  private resyncAll(): void {
    this.learnContextPages();
    for (const d of this.devs) {
      this.readContext(d);
      this.reprobeAll(d);
    }
  }

  /**
   * Re-read the present leaves of a domain over [first, first + pages): drop those based there,
   * walk the tables over the range (learning every table page passed), note what changed.
   */
  private rereadLeaves(root: number, first: number, pages: number): void {
    const m = this.leaves.get(root);
    const d = this.devs.find((x) => x.root === root);
    if (m === undefined || d === undefined) return;
    const before = m.inRange(first, pages);
    const was = new Map<number, number>();
    for (let x = 0; x < before.length; x += 2) {
      was.set(before[x]!, before[x + 1]!);
      m.delete(before[x]!);
    }
    const last = first + pages - 1;
    const mem = this.model.machine.memory;
    const s = this.scratch;
    const walk = (table: number, level: number, base: number): void => {
      this.tables.set(table, { root, level, base });
      if (table === this.quietPage) this.quietPage = -1;
      const span = lvlToNrPages(level);
      const lo = Math.max(first, base);
      const hi = Math.min(last, base + span * 512 - 1);
      if (lo > hi) return;
      // a written table page is read in place; one never written holds its pattern (read as the walk would)
      const words = mem.pageWords(table);
      for (let i = pfnLevelOffset(lo, level); i <= pfnLevelOffset(hi, level); i++) {
        if (words === undefined) mem.readQword(table * VTD_PAGE_SIZE + i * 8, s);
        const lo32 = words === undefined ? s[0]! : words[2 * i]!;
        if ((lo32 & 3) === 0) continue;
        const hi32 = words === undefined ? s[1]! : words[2 * i + 1]!;
        const iova = base + i * span;
        const next = entryPfn(lo32, hi32);
        if (level === 1 || (lo32 & DMA_PTE_LARGE_PAGE) !== 0) {
          // a superpage based before the range is not this range's to re-read
          if (iova >= first) m.set(iova, enc(next, level, lo32 & 3));
        } else walk(next, level - 1, iova);
      }
    };
    walk(root, d.levels, 0);
    // what changed, page by page, for the trace audit; and which leaves map pool pages
    let pooled = this.pooledLeaves.get(root);
    if (pooled === undefined) {
      pooled = new Set();
      this.pooledLeaves.set(root, pooled);
    }
    const owners = this.devs.filter((x) => x.root === root);
    const changed = (pfn: number, v: number): void => {
      for (let i = 0; i < lvlToNrPages(leafLevel(v)); i++) for (const o of owners) o.leafChanges.add(pfn + i);
    };
    for (let x = 0; x < before.length; x += 2) {
      const pfn = before[x]!;
      const v = before[x + 1]!;
      pooled.delete(pfn);
      if (m.get(pfn) !== v) changed(pfn, v);
    }
    const now = m.inRange(first, pages);
    for (let x = 0; x < now.length; x += 2) {
      const pfn = now[x]!;
      const v = now[x + 1]!;
      if (regionOf(leafPhys(v)) !== null) pooled.add(pfn);
      if (was.get(pfn) !== v) changed(pfn, v);
    }
  }

  private reprobeAll(d: DeviceReach): void {
    const all = d.probes.entries();
    for (let x = 1; x < all.length; x += 2) this.setProbe(d, all[x]!, undefined);
    d.probes.clear();
    if (d.root < 0) return;
    this.reprobe(d, 0, lvlToNrPages(d.levels + 1));
  }

  /**
   * Re-probe a device over [first, first + pages): the pages the reference would probe there
   * (of present leaves, and of cached IOTLB entries of the device's domain), each with hw.peek.
   */
  private reprobe(d: DeviceReach, first: number, pages: number): void {
    if (pages <= SMALL_RANGE) {
      // page by page (the same rule as the range walk below, without its sets and closures),
      // once the whole journal is applied: a page written and invalidated in one step is looked
      // at once
      for (let p = first; p < first + pages; p++) d.pending.add(p);
      return;
    }
    const m = d.leaves;
    const hw = this.model.machine.hw;
    // nothing probed, no leaf, no cached entry: nothing to look at (a device's first look at an
    // empty domain)
    if (d.probes.size === 0 && (m === undefined || m.size === 0) && (d.cachedDid === undefined || !hw.iotlb.holdsDomain(d.cachedDid))) return;
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
    if (d.cachedDid !== undefined) {
      for (const e of hw.iotlb.entriesOf(d.cachedDid)) {
        const n = lvlToNrPages(e.level);
        if (e.basePfn <= last && e.basePfn + n - 1 >= first) addCandidate(e.basePfn, n);
      }
    }
    let uniform: typeof superLeaves = [];
    const ctx = superLeaves.length > 0 && !hw.cachingMode ? d.ctx : -1;
    // (the hardware must walk the very tables the leaves were read from)
    if (typeof ctx !== 'number' && ctx.slptPfn === d.root) {
      const entries = [...hw.iotlb.entriesOf(ctx.did)];
      uniform = superLeaves.filter((l) => !entries.some((e) => e.basePfn <= l.base + l.n - 1 && e.basePfn + lvlToNrPages(e.level) - 1 >= l.base));
    }
    const look = (p: number): number => {
      for (const l of uniform) {
        if (p < l.base || p >= l.base + l.n) continue;
        if (l.v === undefined) {
          l.first = p;
          l.v = hw.peekPermIn(d.ctx, p);
        }
        return l.v < 0 ? -1 : l.v + (p - l.first!) * 4;
      }
      return hw.peekPermIn(d.ctx, p);
    };
    // drop what was probed here before, then probe again
    const had = d.probes.inRange(first, pages);
    for (let x = 0; x < had.length; x += 2) {
      const pfn = had[x]!;
      const v = had[x + 1]!;
      if (!probe.has(pfn)) {
        d.probes.delete(pfn);
        this.setProbe(d, v, undefined);
      }
    }
    for (const p of probe) {
      const v = look(p);
      const old = d.probes.get(p);
      const now = v < 0 ? undefined : v;
      if (old === now) continue;
      if (now === undefined) d.probes.delete(p);
      else d.probes.set(p, now);
      this.setProbe(d, old, now);
    }
  }

  /** reprobe() of a single page: whether the reference probes it, and what it reaches. */
  private reprobeOne(d: DeviceReach, p: number): void {
    const hw = this.model.machine.hw;
    // a 4 KiB IOTLB entry of the domain the device resolves to (and caches) answers its probe
    // before any walk: when it says what the page was last seen reaching, nothing moved (the
    // usual device access, whose fill repeats the walk it cached); context changes were applied
    // before this
    if (d.ctxDid !== undefined && d.ctxDid === d.cachedDid) {
      const e = hw.iotlb.at(d.ctxDid, p, 1);
      if (e !== undefined && e.perm !== 0 && d.probes.get(p) === reachOf(e.physBasePfn, e.perm)) return;
    }
    let probed = false;
    const m = d.leaves;
    const base = m === undefined ? -1 : coveringLeafBase(m, p);
    if (base >= 0) probed = modPow2(p - base, probeStep(lvlToNrPages(leafLevel(m!.get(base)!)))) === 0;
    for (let level = 1; !probed && d.cachedDid !== undefined && level <= 3; level++) {
      const n = lvlToNrPages(level);
      const base = levelBase(p, level);
      probed = hw.iotlb.at(d.cachedDid, base, level) !== undefined && modPow2(p - base, probeStep(n)) === 0;
    }
    const old = d.probes.get(p);
    let now: number | undefined;
    if (probed) {
      const v = hw.peekPermIn(d.ctx, p);
      now = v < 0 ? undefined : v;
    }
    if (old === now) return;
    if (now === undefined) d.probes.delete(p);
    else d.probes.set(p, now);
    this.setProbe(d, old, now);
  }

  /** One probe's result moved from `old` to `now` (target * 4 + perm, or none): update the counts. */
  private setProbe(d: DeviceReach, old: number | undefined, now: number | undefined): void {
    if (old !== undefined) this.grant(d, old, -1);
    if (now !== undefined) this.grant(d, now, 1);
  }

  private grant(d: DeviceReach, v: number, by: number): void {
    const phys = reachTarget(v);
    const perm = reachPerm(v);
    const g = d.grants.get(phys) ?? 0;
    const n = g + by * ((perm & 1) + ((perm & 2) !== 0 ? WRITERS : 0));
    if (n === 0) d.grants.delete(phys);
    else d.grants.set(phys, n);
    const before = grantPerm(g);
    const after = grantPerm(n);
    if (after !== before) for (const l of this.listeners) l.permChanged(d.index, phys, before, after);
  }
}
