/**
 * The reachable set of every device of one path, kept current from what the hardware reports
 * changed (vtd/journal.ts) instead of re-probed after every step: a step costs what it changed.
 *
 * What is kept, per path:
 * - the present leaves of each domain page table (reach-leaves.ts), re-read only over the span of
 *   a page-table entry that was written (the table page written tells which domain, level and
 *   IOVA range it maps; tables are learnt as walks pass through them);
 * - per device (reach-probes.ts), the probe results: every IOVA page the reference probes
 *   (observe.ts computeReachable) that reaches a physical page, with its permission -- re-probed
 *   (hw.peek) over the range of each written entry, filled or dropped IOTLB entry and, in caching
 *   mode, each invalidation (it can make written entries visible);
 * - per device, each physical page's permission (how many IOVA pages grant read, write), whose
 *   changes a listener receives: the checker keeps the running difference of the two paths.
 * This file applies the journal to both and answers the checker. A context change (context
 * cache, context invalidation, root table, translation enable) re-probes the devices whose
 * context moved. computeReachable stays the reference: tests and --paranoid compare the two
 * after every step.
 */
import type { Device } from '../../kernel/device.js';
import type { DmaPath } from '../../platform/dma-api.js';
import type { CachedContext } from '../../vtd/context-cache.js';
import { TranslationJournal } from '../../vtd/journal.js';
import { VTD_PAGE_SIZE, DMA_PTE_READ, agawToLevel, lvlToNrPages } from '../../vtd/regs.js';
import { entryPfn } from '../../vtd/entries.js';
import { poolKey, regionOf, type Reachable } from './observe.js';
import type { PfnList } from './page-map.js';
import { LeafShadow, coveringLeafBase, leafPerm, leafPhys } from './reach-leaves.js';
import { DeviceReach, reachOf, reachPerm, reachTarget, type PermListener } from './reach-probes.js';

export class ReachTracker {
  private readonly journal = new TranslationJournal();
  private readonly devs: DeviceReach[];
  private readonly byDev = new Map<Device, DeviceReach>();
  private readonly shadow: LeafShadow;
  /** the shadow's table pages (its map, held here too: update() looks each write up in it) */
  private readonly tables: LeafShadow['tables'];
  /** root and context table pages of the tracked devices: a write there moves contexts */
  private contextPages = new Set<number>();
  private readonly listeners: PermListener[] = [];

  /**
   * `bug` is a seeded bug of the tracker itself, for the test that proves --paranoid's
   * comparison can fail: 'ignoreIotlbEvents' never re-probes for a filled or dropped IOTLB entry.
   */
  constructor(
    readonly model: DmaPath,
    private readonly bug?: 'ignoreIotlbEvents',
  ) {
    const hw = model.machine.hw;
    this.devs = model.devices.map((d, i) => new DeviceReach(i, d, hw, this.listeners));
    for (const d of this.devs) this.byDev.set(d.dev, d);
    this.shadow = new LeafShadow(model.machine.memory, this.devs);
    this.tables = this.shadow.tables;
    hw.journal = this.journal;
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
    this.shadow.addPooledLeafPages(this.of(dev).root, into);
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
    const shadow = this.shadow;
    const tables = this.tables;
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
        tables.delete(page);
        if (this.contextPages.has(page)) contextMoved = true;
        continue;
      }
      // most writes are the invalidation queue's descriptors and status, one page over and over
      if (page === shadow.quietPage) continue;
      const info = tables.get(page);
      if (info === undefined) {
        if (this.contextPages.has(page)) contextMoved = true;
        else shadow.quietPage = page;
        continue; // a table not linked into any tracked domain (yet): its linking is a write we see
      }
      const span = lvlToNrPages(info.level);
      const off = addr - page * VTD_PAGE_SIZE;
      const i0 = Math.floor(off / 8);
      const i1 = Math.floor((off + n - 1) / 8);
      if (info.level === 1 && i0 === i1) shadow.leafWritten(info.root, info.base + i0, addr);
      else dirty.push([info.root, info.base + i0 * span, (i1 - i0 + 1) * span]);
    }
    if (contextMoved) this.resyncContexts();
    for (const [root, first, pages] of dirty) shadow.rereadLeaves(root, first, pages);
    for (const [root, first, pages] of dirty) for (const d of this.devs) if (d.root === root) d.reprobe(first, pages);
    // IOTLB entries filled or dropped: in the domain a device's cached context names (they are
    // candidates) or the one its walk resolves to (they answer its probes)
    const t = j.iotlb;
    const nt = this.bug === 'ignoreIotlbEvents' ? 0 : j.nIotlb;
    for (let k = 0; k < nt; k += 3) {
      for (const d of this.devs) {
        if (d.cachedDid !== t[k] && d.ctxDid !== t[k]) continue;
        if (t[k + 2] === 1) d.pending.add(t[k + 1]!);
        else d.reprobe(t[k + 1]!, t[k + 2]!);
      }
    }
    // caching mode: an invalidation can make written entries visible
    if (hw.cachingMode) {
      const c = j.coverage;
      for (let k = 0; k < j.nCoverage; k += 3) {
        const did = c[k]!;
        for (const d of this.devs) {
          if (did !== -1 && d.ctxDid !== did) continue;
          if (c[k + 2]! < 0) d.reprobeAll();
          else d.reprobe(c[k + 1]!, c[k + 2]!);
        }
      }
    }
    for (const d of this.devs) {
      const n = d.pending.settle();
      for (let x = 0; x < n; x++) d.reprobeOne(d.pending.at(x));
      d.pending.clear();
    }
    j.clear();
  }

  /** Contexts may have moved: re-probe every device whose resolved or cached context changed. */
  private resyncContexts(): void {
    this.learnContextPages();
    const hw = this.model.machine.hw;
    for (const d of this.devs) {
      const before = d.ctxKey;
      const cachedBefore = d.cachedDid;
      this.readContext(d);
      if (d.ctxKey !== before) d.reprobeAll();
      else if (d.cachedDid !== cachedBefore) {
        // only which IOTLB entries count as candidates moved: re-probe where those entries are
        for (const did of [cachedBefore, d.cachedDid]) {
          if (did === undefined) continue;
          for (const e of [...hw.iotlb.entriesOf(did)]) d.reprobe(e.basePfn, lvlToNrPages(e.level));
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
      d.leaves = d.root >= 0 ? this.shadow.domain(d.root, d.levels) : undefined;
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
    this.shadow.quietPage = -1;
  }

  private resyncAll(): void {
    this.learnContextPages();
    for (const d of this.devs) {
      this.readContext(d);
      d.reprobeAll();
    }
  }
}
