/**
 * drivers/iommu/iova.c: the IOVA allocator both DMA paths sit on, with each release's rules.
 *
 * A red-black tree of allocated and reserved pfn ranges (anchored by a node above all usable
 * space), a top-down search from the limit that starts at a cached node, and per-CPU range
 * caches ("rcaches": loaded/prev magazines per size class plus a global depot).
 *
 * Where 5.10.262 and 6.1.192 differ (kernel-semantics 10.2 and 9.1):
 *  - the search: 6.1 stops the walk at the low bound and retries once from the top with the
 *    fixed retry (4e89dce72521 + dcdb3ba7e2a8); 5.10 has neither;
 *  - alloc_iova_fast: 6.1 rounds sizes below 32 pages up to a power of two itself (5.10 callers
 *    round), and on failure also empties the global depot (6fa3525b455a) before retrying;
 *  - IOVA_MAG_SIZE: 128 in 5.10, 127 in 6.1.
 * Both releases carry 5b61343b5059 (max32_alloc_size reset on any free below 4 GiB). Checked in
 * the real sources: Debian's linux-source-5.10 5.10.262-1 iova.c has that reset, no retry, no
 * low-bound stop in the walk, IOVA_MAG_SIZE 128 and no free_global_cached_iovas;
 * linux-source-6.1 6.1.192 has the fixed retry (iova_find_limit), the depot flush and 127.
 */
import { RbTree, newNode, type IovaNode } from './rbtree.js';
import { BUG_ON, invariantChecks, must } from './assert.js';
import { fls } from './bits.js';
import { checkIovaTree } from './iova-invariants.js';
import { IOVA_RANGE_CACHE_MAX_SIZE, initRcaches, iovaMagSize, rcacheGet, rcacheInsert, rcachedPfns, type IovaRcache, type RcacheCounters } from './iova-rcache.js';
import { orderBase2, roundupPowOfTwo, type Release } from './release.js';

// iova.h's constants, where iova.c's users have always found them

/** the anchor's pfn_lo/pfn_hi: ~0UL, above every usable pfn */
export const IOVA_ANCHOR = 2 ** 64;

export interface IovaCounters extends RcacheCounters {
  /** alloc_iova calls (the rbtree search) and how many failed */
  slowPathSearches: number;
  slowPathFailures: number;
  /** alloc_iova_fast retries after emptying the caches */
  rcacheFlushRetries: number;
  /** 6.1: the retry pass of the tree search (from the top, above the start node) found a range */
  retrySuccesses: number;
  /** 6.1: the failure path of alloc_iova_fast emptied at least one non-empty depot magazine */
  depotFlushes: number;
}

/**
 * Seeded bugs in the 6.1 allocator (the generic path's domains only); all off by default, and
 * none of them acts on a 5.10 domain.
 */
export interface IovaFaults {
  /** __alloc_and_insert_iova_range: the retry walks again from the node the first pass started at */
  retryFromCachedNode?: boolean;
  /** alloc_iova_fast: every size is rounded up to a power of two, as 5.10's intel_alloc_iova did */
  roundAllToPowerOfTwo?: boolean;
  /** alloc_iova_fast: the failure path empties the per-CPU magazines but not the global depot */
  noDepotFlushOnFailure?: boolean;
}

export class IovaDomain {
  readonly tree = new RbTree();
  readonly anchor: IovaNode;
  cachedNode: IovaNode;
  cached32Node: IovaNode;
  /** 1 << (32 - shift): the first pfn above 4 GiB */
  readonly dma32bitPfn: number;
  /**
   * ULLONG_MAX >> iova_shift(iovad): reserve_iova's bound on pfns. 2 ** (64 - shift) - 1, exact
   * for shift 12 (2^52 - 1) and 11 (2^53 - 1); for smaller granules the double rounds up to
   * 2 ** (64 - shift), which differs only for pfns no double can tell apart anyway.
   */
  private readonly reservePfnMax: number;
  max32AllocSize: number;
  readonly rcaches: IovaRcache[];
  readonly magSize: number;
  readonly counters: IovaCounters = {
    rcacheHits: 0,
    rcacheMisses: 0,
    depotPushes: 0,
    depotOverflows: 0,
    depotPops: 0,
    slowPathSearches: 0,
    slowPathFailures: 0,
    rcacheFlushRetries: 0,
    retrySuccesses: 0,
    depotFlushes: 0,
  };

  /** init_iova_domain + iova_domain_init_rcaches */
  constructor(
    readonly release: Release,
    readonly granule: number,
    readonly startPfn: number,
    readonly ncpus: number,
    readonly faults: IovaFaults = {},
  ) {
    BUG_ON(granule > 4096 || (granule & (granule - 1)) !== 0, 'init_iova_domain: the granule is not a power of two up to PAGE_SIZE');
    const shift = Math.log2(granule);
    this.dma32bitPfn = 2 ** (32 - shift);
    this.reservePfnMax = 2 ** (64 - shift) - 1;
    this.max32AllocSize = this.dma32bitPfn;
    this.anchor = newNode(IOVA_ANCHOR, IOVA_ANCHOR, true);
    this.tree.insert(this.anchor);
    this.cachedNode = this.anchor;
    this.cached32Node = this.anchor;
    this.magSize = iovaMagSize(release);
    this.rcaches = initRcaches(ncpus);
  }

  // ------------------------------------------------------------------ cached nodes

  /** __get_cached_rbnode */
  private cachedFor(limitPfn: number): IovaNode {
    return limitPfn <= this.dma32bitPfn ? this.cached32Node : this.cachedNode;
  }

  /** __cached_rbnode_insert_update */
  private cachedInsertUpdate(n: IovaNode): void {
    if (n.pfnHi < this.dma32bitPfn) this.cached32Node = n;
    else this.cachedNode = n;
  }

  /** __cached_rbnode_delete_update (with 5b61343b5059 in both releases) */
  private cachedDeleteUpdate(free: IovaNode): void {
    const c32 = this.cached32Node;
    if (free === c32 || (free.pfnHi < this.dma32bitPfn && free.pfnLo >= c32.pfnLo)) this.cached32Node = this.above(free);
    if (free.pfnLo < this.dma32bitPfn) this.max32AllocSize = this.dma32bitPfn;
    if (free.pfnLo >= this.cachedNode.pfnLo) this.cachedNode = this.above(free);
  }

  /** rb_next of a node being freed: there always is one (the anchor is above every range) */
  private above(n: IovaNode): IovaNode {
    return must(this.tree.next(n), 'a node above the freed one (the anchor is above every range)');
  }

  /** iova_find_limit (6.1): where the retry starts its walk. */
  private findLimit(limitPfn: number): IovaNode {
    if (limitPfn > this.dma32bitPfn) return this.anchor;
    return this.tree.lowestWithHiAtLeast(limitPfn) ?? this.anchor;
  }

  // ------------------------------------------------------------------ the tree allocator

  /**
   * __alloc_and_insert_iova_range(size, L = limit + 1, aligned): top-down from the cached node.
   * Returns the new node or null (and then sets max32_alloc_size = size, whatever the limit).
   */
  private allocAndInsert(size: number, L: number, sizeAligned: boolean): IovaNode | null {
    const align = sizeAligned ? 2 ** fls(size - 1) : 1;
    if (L <= this.dma32bitPfn && size >= this.max32AllocSize) return null;
    const start = this.cachedFor(L);
    let curr: IovaNode | null = start;
    let high = L;
    let low = this.startPfn;
    // 6.1: retry_pfn is the start node's pfn_hi; from the anchor it is never below L
    const retryPfn = curr.pfnHi;
    let candidate = 0;
    let retried = false;
    for (;;) {
      do {
        high = Math.min(high, curr!.pfnLo);
        // unsigned in the kernel: a size above high wraps to a huge value, which fails below
        candidate = high >= size ? Math.floor((high - size) / align) * align : IOVA_ANCHOR;
        curr = this.tree.prev(curr!);
      } while (
        curr !== null &&
        candidate <= curr.pfnHi &&
        // the low-bound stop came with the retry in v5.11
        (this.release === '5.10' || candidate >= low)
      );
      if (high < size || candidate < low) {
        if (this.release === '6.1' && low === this.startPfn && retryPfn < L) {
          high = L;
          low = retryPfn + 1;
          retried = true;
          // seeded bug: iova_find_limit(L) (the top) replaced by the first pass's start node, so
          // the walk starts below the range [retry_pfn + 1, L) it is meant to search
          curr = this.faults.retryFromCachedNode === true ? start : this.findLimit(L);
          continue;
        }
        this.max32AllocSize = size;
        return null;
      }
      break;
    }
    if (retried) this.counters.retrySuccesses++;
    const n = newNode(candidate, candidate + size - 1);
    this.tree.insert(n);
    this.cachedInsertUpdate(n);
    if (invariantChecks.on) checkIovaTree(this, 'alloc_iova');
    return n;
  }

  /** alloc_iova(size, limit_pfn (inclusive), size_aligned) */
  allocIova(size: number, limitPfn: number, sizeAligned: boolean): IovaNode | null {
    this.counters.slowPathSearches++;
    const n = this.allocAndInsert(size, limitPfn + 1, sizeAligned);
    if (n === null) this.counters.slowPathFailures++;
    return n;
  }

  /** find_iova */
  findIova(pfn: number): IovaNode | null {
    return this.tree.findContaining(pfn);
  }

  /** remove_iova / __free_iova */
  removeIova(n: IovaNode): void {
    this.cachedDeleteUpdate(n);
    this.tree.remove(n);
    if (invariantChecks.on) checkIovaTree(this, 'remove_iova');
  }

  /**
   * free_iova: quietly nothing when no range holds pfn, in both releases. Not an invariant of the
   * model: a path freeing an IOVA twice (a bug the gate must find) goes on as the kernel does,
   * and the divergence shows where the range is handed out twice or leaks.
   */
  freeIova(pfn: number): void {
    const n = this.tree.findContaining(pfn);
    if (n !== null) this.removeIova(n);
  }

  /**
   * reserve_iova: widen the first overlapping node downwards, skip past each overlap, insert
   * what remains. Cached nodes are not touched.
   */
  reserveIova(pfnLo: number, pfnHi: number): IovaNode | null {
    // reserve_iova: WARN_ON((pfn_hi | pfn_lo) > (ULLONG_MAX >> iova_shift(iovad))) → NULL
    if (pfnLo > this.reservePfnMax || pfnHi > this.reservePfnMax) return null;
    BUG_ON(pfnLo > pfnHi, 'reserve_iova: pfn_lo > pfn_hi');
    let overlap = false;
    for (let n = this.tree.first(); n !== null; n = this.tree.next(n)) {
      if (pfnLo <= n.pfnHi && pfnHi >= n.pfnLo) {
        // __adjust_overlap_range
        if (pfnLo < n.pfnLo) n.pfnLo = pfnLo;
        if (pfnHi > n.pfnHi) pfnLo = n.pfnHi + 1;
        if (pfnLo >= n.pfnLo && pfnHi <= n.pfnHi) {
          if (invariantChecks.on) checkIovaTree(this, 'reserve_iova');
          return n;
        }
        overlap = true;
      } else if (overlap) {
        break;
      }
    }
    const n = newNode(pfnLo, pfnHi, true);
    this.tree.insert(n);
    if (invariantChecks.on) checkIovaTree(this, 'reserve_iova');
    return n;
  }

  // ------------------------------------------------------------------ fast path and rcache

  /**
   * alloc_iova_fast(size, limit_pfn, flush_rcache) on a given CPU. Returns the pfn, 0 on failure.
   * 5.10 callers have already rounded size to a power of two; 6.1 rounds sizes below 32 here.
   */
  allocIovaFast(cpu: number, size: number, limitPfn: number, flushRcache: boolean): number {
    // seeded bug (roundAllToPowerOfTwo): 6.1 rounds only sizes below 32 pages, not every size
    if (this.release === '6.1' && (size < 2 ** (IOVA_RANGE_CACHE_MAX_SIZE - 1) || this.faults.roundAllToPowerOfTwo === true)) size = roundupPowOfTwo(size);
    const cached = this.rcacheGet(cpu, size, limitPfn + 1);
    if (cached !== 0) return cached;
    for (;;) {
      const n = this.allocIova(size, limitPfn, true);
      if (n !== null) return n.pfnLo;
      if (!flushRcache) return 0;
      flushRcache = false;
      this.counters.rcacheFlushRetries++;
      for (let c = 0; c < this.ncpus; c++) this.freeCpuCachedIovas(c);
      // seeded bug (noDepotFlushOnFailure): 6.1 also empties the global depot before the retry
      if (this.release === '6.1' && this.faults.noDepotFlushOnFailure !== true) {
        if (this.rcaches.some((rc) => rc.depot.some((mag) => mag.length > 0))) this.counters.depotFlushes++;
        this.freeGlobalCachedIovas();
      }
    }
  }

  /** free_iova_fast(pfn, size): into the rcache of order_base_2(size), else back to the tree. */
  freeIovaFast(cpu: number, pfn: number, size: number): void {
    if (this.rcacheInsert(cpu, pfn, size)) return;
    this.freeIova(pfn);
  }

  /** iova_rcache_get: from the size class's rcache, a pfn whose range ends below the limit */
  private rcacheGet(cpu: number, size: number, limitPfnExclusive: number): number {
    const log = orderBase2(size);
    if (log >= IOVA_RANGE_CACHE_MAX_SIZE) return 0;
    return rcacheGet(this.rcaches[log]!, this.counters, cpu, size, limitPfnExclusive);
  }

  /** iova_rcache_insert: false for a size no class caches */
  private rcacheInsert(cpu: number, pfn: number, size: number): boolean {
    const log = orderBase2(size);
    if (log >= IOVA_RANGE_CACHE_MAX_SIZE) return false;
    const toFree = rcacheInsert(this.rcaches[log]!, this.counters, this.magSize, cpu, pfn);
    if (toFree !== null) this.magazineFreePfns(toFree);
    return true;
  }

  /** iova_magazine_free_pfns: each cached range back to the tree, in index order */
  private magazineFreePfns(mag: number[]): void {
    for (const pfn of mag) {
      const n = this.tree.findContaining(pfn);
      // a cached range is always in the tree unless a path freed it twice: both releases
      // WARN_ON(!iova) and go on with the next pfn (d3e3d2be688b, in 5.9, replaced the BUG_ON)
      if (n !== null) this.removeIova(n);
    }
    mag.length = 0;
  }

  /** free_cpu_cached_iovas: loaded then prev, for every size class */
  freeCpuCachedIovas(cpu: number): void {
    for (const rc of this.rcaches) {
      this.magazineFreePfns(rc.cpu[cpu]!.loaded);
      this.magazineFreePfns(rc.cpu[cpu]!.prev);
    }
  }

  /** free_global_cached_iovas (6.1): every depot magazine, in depot order */
  freeGlobalCachedIovas(): void {
    for (const rc of this.rcaches) {
      for (const mag of rc.depot) this.magazineFreePfns(mag);
      rc.depot.length = 0;
    }
  }

  // ------------------------------------------------------------------ reports

  /** Allocated (not reserved) ranges still in the tree, including those parked in rcaches. */
  liveRanges(): Array<{ pfnLo: number; pfnHi: number }> {
    const out: Array<{ pfnLo: number; pfnHi: number }> = [];
    for (const n of this.tree.inOrder()) if (!n.reserved) out.push({ pfnLo: n.pfnLo, pfnHi: n.pfnHi });
    return out;
  }

  /** Every pfn parked in a magazine or the depot (allocated in the tree, free for reuse). */
  cachedPfns(): Set<number> {
    return rcachedPfns(this.rcaches);
  }

  /** Ranges handed out and not yet freed: live in the tree and not parked in a cache. */
  inUseRanges(): Array<{ pfnLo: number; pfnHi: number }> {
    const cached = this.cachedPfns();
    return this.liveRanges().filter((r) => !cached.has(r.pfnLo));
  }
}
