/**
 * What a device can reach, and what a path's trace says it mapped: the observations the
 * equivalence checker compares beyond step results.
 *
 * Reachable set: for each device, every physical page it can reach now with read and/or write
 * permission -- through a present PTE the hardware would see, or a translation still cached in
 * the IOTLB -- found by probing the hardware without side effects. Buffer pages compare by
 * address; swiotlb slots and coherent pages compare by count and permission, since each release
 * places them its own way.
 */
import type { Device } from '../../kernel/device.js';
import type { DmaPath } from '../../platform/dma-api.js';
import { COHERENT_REGION, SWIOTLB_REGION, inRegion } from '../../vtd/regions.js';
import { VTD_PAGE_SIZE, lvlToNrPages } from '../../vtd/regs.js';

/** per device: buffer page → perm bits (1 read, 2 write); pooled pages as "region:perm" → count */
export interface Reachable {
  pages: Map<number, number>;
  pooled: Map<string, number>;
}

/** Probe ranges above this many pages only every 512 pages (a 1 GiB leaf is uniform). */
export const DENSE_PROBE_LIMIT = 4096;

/** The pool a physical page belongs to (its pages compare by count), or null for a buffer page. */
/** "region:perm", the key of a pool count, made once per region and permission */
const POOL_KEYS = new Map<string, string[]>();
export function poolKey(region: string, perm: number): string {
  let ks = POOL_KEYS.get(region);
  if (ks === undefined) {
    ks = [0, 1, 2, 3].map((p) => `${region}:${p}`);
    POOL_KEYS.set(region, ks);
  }
  return ks[perm]!;
}

export function regionOf(physPfn: number): string | null {
  const a = physPfn * VTD_PAGE_SIZE;
  if (inRegion(SWIOTLB_REGION, a)) return 'swiotlb';
  if (inRegion(COHERENT_REGION, a)) return 'coherent';
  return null;
}

/**
 * The reachable set of one device on one path, computed from scratch: every candidate page (of
 * a present leaf, or of a cached IOTLB entry of the device's domain) probed without side
 * effects. The reference that reach-tracker.ts keeps current incrementally; tests and
 * --paranoid compare the two.
 */
export function computeReachable(model: DmaPath, dev: Device): Reachable {
  const hw = model.machine.hw;
  const candidates: Array<{ iovaPfn: number; pages: number }> = [];
  for (const l of model.presentLeaves(dev)) candidates.push({ iovaPfn: l.iovaPfn, pages: l.pages });
  const ctx = hw.contextCache.lookup(dev.sid);
  if (ctx !== undefined) {
    for (const e of hw.iotlb.entries()) if (e.did === ctx.did) candidates.push({ iovaPfn: e.basePfn, pages: lvlToNrPages(e.level) });
  }
  const seen = new Set<number>();
  const phys = new Map<number, number>();
  for (const c of candidates) {
    const step = c.pages > DENSE_PROBE_LIMIT ? 512 : 1;
    for (let i = 0; i < c.pages; i += step) {
      const pfn = c.iovaPfn + i;
      if (seen.has(pfn)) continue;
      seen.add(pfn);
      const r = hw.peek(dev.sid, pfn, false);
      const w = hw.peek(dev.sid, pfn, true);
      const perm = (r >= 0 ? 1 : 0) | (w >= 0 ? 2 : 0);
      if (perm === 0) continue;
      const target = r >= 0 ? r : w;
      phys.set(target, (phys.get(target) ?? 0) | perm);
    }
  }
  const out: Reachable = { pages: new Map(), pooled: new Map() };
  for (const [pfn, perm] of phys) {
    const region = regionOf(pfn);
    if (region === null) out.pages.set(pfn, perm);
    else {
      const k = poolKey(region, perm);
      out.pooled.set(k, (out.pooled.get(k) ?? 0) + 1);
    }
  }
  return out;
}

function permName(p: number): string {
  return p === 3 ? 'rw' : p === 1 ? 'r' : 'w';
}

/** A reached page as reports show it: "0x1234000:rw". */
export function showReach(pfn: number, p: number): string {
  return `0x${(pfn * VTD_PAGE_SIZE).toString(16)}:${permName(p)}`;
}

export interface ReachableDiff {
  /** for display: pages (and pooled counts) only A or only B reaches, or reaches differently */
  onlyA: string[];
  onlyB: string[];
  /** buffer pages only B reaches */
  extraBPfns: number[];
  /** buffer pages both reach, B with more permission */
  widerBPfns: number[];
  /** pages or pooled pages where A can do something B cannot */
  narrowerB: number;
}

/** The difference between two reachable sets, or null when equal. */
export function diffReachable(a: Reachable, b: Reachable): ReachableDiff | null {
  const pfns = [...new Set([...a.pages.keys(), ...b.pages.keys()])].sort((x, y) => x - y);
  return reachDiff(pfns, (pfn) => a.pages.get(pfn) ?? 0, (pfn) => b.pages.get(pfn) ?? 0, a.pooled, b.pooled);
}

/**
 * The difference of two reachable sets from where they may differ: buffer pages (in the order
 * given) with each side's permission (0: not reached), and each side's pool counts.
 */
export function reachDiff(
  pfns: Iterable<number>,
  permA: (pfn: number) => number,
  permB: (pfn: number) => number,
  pooledA: ReadonlyMap<string, number>,
  pooledB: ReadonlyMap<string, number>,
): ReachableDiff | null {
  const d: ReachableDiff = { onlyA: [], onlyB: [], extraBPfns: [], widerBPfns: [], narrowerB: 0 };
  for (const pfn of pfns) {
    const p = permA(pfn);
    const q = permB(pfn);
    if (p === q) continue;
    if (p !== 0) {
      d.onlyA.push(showReach(pfn, p));
      if ((p & ~q) !== 0) d.narrowerB++;
    }
    if (q !== 0) {
      d.onlyB.push(showReach(pfn, q));
      if (p === 0) d.extraBPfns.push(pfn);
      else if ((q & ~p) !== 0) d.widerBPfns.push(pfn);
    }
  }
  for (const key of [...new Set([...pooledA.keys(), ...pooledB.keys()])].sort()) {
    const x = pooledA.get(key) ?? 0;
    const y = pooledB.get(key) ?? 0;
    if (x > y) {
      d.onlyA.push(`${x - y} ${key} page(s)`);
      d.narrowerB++;
    }
    if (y > x) d.onlyB.push(`${y - x} ${key} page(s)`);
  }
  return d.onlyA.length === 0 && d.onlyB.length === 0 ? null : d;
}
