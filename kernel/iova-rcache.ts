/**
 * The IOVA range caches of drivers/iommu/iova.c (struct iova_rcache, struct iova_cpu_rcache,
 * struct iova_magazine): per size class (1, 2, 4 .. 32 pages), each CPU has a loaded and a
 * previous magazine of freed pfns, and full magazines go to a global depot of MAX_GLOBAL_MAGS.
 * A magazine is an array of pfns, top last.
 *
 * What touches the tree (a magazine's pfns going back to it) stays with the IOVA domain; the
 * magazine moves are here, with iova.c's BUG_ONs on a full push and an empty pop.
 */
import { BUG_ON } from './assert.js';
import type { Release } from './release.js';

/** log2 of the largest cached range plus one: classes for 1, 2, 4, 8, 16, 32 pages */
export const IOVA_RANGE_CACHE_MAX_SIZE = 6;
/** full magazines per size class in the depot */
export const MAX_GLOBAL_MAGS = 32;

/** IOVA_MAG_SIZE: 128 in 5.10, 127 in 6.1 */
export function iovaMagSize(release: Release): number {
  return release === '5.10' ? 128 : 127;
}

/** struct iova_cpu_rcache */
export interface IovaCpuRcache {
  loaded: number[];
  prev: number[];
}

/** struct iova_rcache: one size class */
export interface IovaRcache {
  cpu: IovaCpuRcache[];
  depot: number[][];
}

/** The rcache counters the coverage reports read. */
export interface RcacheCounters {
  rcacheHits: number;
  rcacheMisses: number;
  /** magazines moved into the depot / taken from it / freed because it was full */
  depotPushes: number;
  depotPops: number;
  depotOverflows: number;
}

/** iova_domain_init_rcaches: every size class, every CPU, empty magazines */
export function initRcaches(ncpus: number): IovaRcache[] {
  const out: IovaRcache[] = [];
  for (let i = 0; i < IOVA_RANGE_CACHE_MAX_SIZE; i++) {
    const cpu: IovaCpuRcache[] = [];
    for (let c = 0; c < ncpus; c++) cpu.push({ loaded: [], prev: [] });
    out.push({ cpu, depot: [] });
  }
  return out;
}

/**
 * __iova_rcache_get: from the CPU's loaded magazine (swapping in prev, or a depot magazine, when
 * it is empty), pop a pfn p with p + size - 1 below limitPfnExclusive. 0 if none.
 */
export function rcacheGet(rc: IovaRcache, counters: RcacheCounters, cpu: number, size: number, limitPfnExclusive: number): number {
  const cr = rc.cpu[cpu]!;
  let has = false;
  if (cr.loaded.length > 0) {
    has = true;
  } else if (cr.prev.length > 0) {
    [cr.loaded, cr.prev] = [cr.prev, cr.loaded];
    has = true;
  } else if (rc.depot.length > 0) {
    cr.loaded = rc.depot.pop()!;
    counters.depotPops++;
    has = true;
  }
  let pfn = 0;
  if (has) pfn = magazinePop(cr.loaded, limitPfnExclusive - size);
  if (pfn !== 0) counters.rcacheHits++;
  else counters.rcacheMisses++;
  return pfn;
}

/**
 * __iova_rcache_insert: into the loaded magazine; a full one swaps with prev, or (both full) goes
 * to the depot, or when the depot is full is handed back for its pfns to return to the tree
 * (after this pfn is pushed, as iova.c frees it after dropping the lock). Returns that magazine
 * or null.
 */
export function rcacheInsert(rc: IovaRcache, counters: RcacheCounters, magSize: number, cpu: number, pfn: number): number[] | null {
  const cr = rc.cpu[cpu]!;
  let toFree: number[] | null = null;
  if (cr.loaded.length < magSize) {
    // room in the loaded magazine
  } else if (cr.prev.length < magSize) {
    [cr.loaded, cr.prev] = [cr.prev, cr.loaded];
  } else {
    if (rc.depot.length < MAX_GLOBAL_MAGS) {
      rc.depot.push(cr.loaded);
      counters.depotPushes++;
    } else {
      toFree = cr.loaded;
      counters.depotOverflows++;
    }
    cr.loaded = [];
  }
  magazinePush(cr.loaded, magSize, pfn);
  return toFree;
}

/** iova_magazine_push: BUG_ON(iova_magazine_full(mag)) */
function magazinePush(mag: number[], magSize: number, pfn: number): void {
  BUG_ON(mag.length >= magSize, 'iova_magazine_push: the magazine is full');
  mag.push(pfn);
}

/** iova_magazine_pop: from the top down, the first pfn <= limit; swap the last into its slot. */
function magazinePop(mag: number[], limitPfn: number): number {
  BUG_ON(mag.length === 0, 'iova_magazine_pop: the magazine is empty');
  let i = mag.length - 1;
  while (mag[i]! > limitPfn) {
    if (i === 0) return 0;
    i--;
  }
  const pfn = mag[i]!;
  const last = mag.pop()!;
  if (i < mag.length) mag[i] = last;
  return pfn;
}

/** Every pfn parked in a magazine or the depot (allocated in the tree, free for reuse). */
export function rcachedPfns(rcaches: readonly IovaRcache[]): Set<number> {
  const s = new Set<number>();
  for (const rc of rcaches) {
    for (const c of rc.cpu) for (const p of [...c.loaded, ...c.prev]) s.add(p);
    for (const m of rc.depot) for (const p of m) s.add(p);
  }
  return s;
}
